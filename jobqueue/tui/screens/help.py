"""The help overlay, drawn from ``keys.KEYS`` and ``keys.MOUSE``: every key is listed here
because every binding is built from the same table. esc (or ?, q) closes it."""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import DataTable, Static

from jobqueue.tui.keys import KEYS, MOUSE


def key_names(keys: str) -> str:
    """``escape,question_mark`` -> ``esc / ?``: the names a user presses."""
    names = {"escape": "esc", "question_mark": "?", "slash": "/", "down": "↓", "up": "↑"}
    return " / ".join(names.get(key, key) for key in keys.split(","))


class HelpScreen(ModalScreen[None]):
    DEFAULT_CSS = """
    HelpScreen { align: center middle; }
    HelpScreen > Vertical {
        width: 100; max-width: 98%; height: auto; max-height: 98%;
        border: thick $accent; background: $surface;
    }
    HelpScreen DataTable { height: auto; max-height: 100%; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape,question_mark,q", "dismiss", "close")]

    def compose(self) -> ComposeResult:
        with Vertical() as box:
            box.border_title = "jobqueue tui · keys"
            box.border_subtitle = "esc closes"
            yield Static(" The names and figures of jobqueue admin …; ↑/↓ scroll.")
            yield DataTable(cursor_type="row", zebra_stripes=True)

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        table.add_columns("key", "what it does")
        for key in KEYS:
            where = "" if key.where == "any tab" else f" ({key.where} tab)"
            table.add_row(key_names(key.keys), key.label + where)
        for gesture, label in MOUSE:
            table.add_row(gesture, label)
        table.focus()
