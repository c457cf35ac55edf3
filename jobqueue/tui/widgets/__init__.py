"""The TUI's own widgets: a row table and the status line."""
