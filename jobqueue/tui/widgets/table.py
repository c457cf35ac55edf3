"""``RowTable``: Textual's DataTable showing ``rows.Row`` values, filtered, with the
selection kept on the same row (by key) across refreshes, and a right-click that asks for a
peek (DataTable moves its cursor on any button; a right-click should peek, not select)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rich.text import Text
from textual import events
from textual.fuzzy import Matcher
from textual.message import Message
from textual.widgets import DataTable

from jobqueue.tui.rows import Row

RIGHT_BUTTON = 3


def matches(query: str, text: str) -> bool:
    """Fuzzy and case-insensitive: the query's characters in order (``hgh`` finds high)."""
    return not query or Matcher(query).match(text) > 0


class RowTable(DataTable[Text]):
    """A table of rows; ``shown`` is what the filter left, in order."""

    class PeekRequested(Message):
        """Right-click on a row (the cursor is on it now)."""

        def __init__(self, table: RowTable) -> None:
            self.table = table
            super().__init__()

    def __init__(self, columns: Sequence[str], **kwargs: Any) -> None:
        super().__init__(cursor_type="row", zebra_stripes=True, **kwargs)
        self.column_names = tuple(columns)
        self.shown: list[Row] = []

    def on_mount(self) -> None:
        self.add_columns(*self.column_names)

    def show(self, rows: Sequence[Row], query: str = "") -> None:
        """Replace the rows with those ``query`` matches, the selected one kept."""
        selected = self.selected()
        self.shown = [row for row in rows if matches(query, row.search)]
        self.clear()
        for row in self.shown:
            self.add_row(*(Text(cell) for cell in row.cells), key=row.key)  # no markup, no emoji
        keys = [row.key for row in self.shown]
        if selected is not None and selected.key in keys:
            self.move_cursor(row=keys.index(selected.key), animate=False)

    def selected(self) -> Row | None:
        if 0 <= self.cursor_row < len(self.shown):
            return self.shown[self.cursor_row]
        return None

    async def _on_click(self, event: events.Click) -> None:
        if event.button != RIGHT_BUTTON:
            await super()._on_click(event)
            return
        event.stop()
        row = event.style.meta.get("row")
        if isinstance(row, int) and 0 <= row < len(self.shown):
            self.move_cursor(row=row, animate=False)
            self.post_message(self.PeekRequested(self))
