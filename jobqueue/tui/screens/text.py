"""A scrollable modal of text and pretty JSON: the peek of a queue and the view of one job.
Keys: j/k and the arrows scroll, PgUp/PgDn by a page, esc or q closes."""

from __future__ import annotations

import json
from typing import Any, ClassVar

from rich.console import Group, RenderableType
from rich.json import JSON
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from jobqueue.admin import render
from jobqueue.admin.commands import Peeked, PeekResult
from jobqueue.engine import JobRecord


def pretty(value: Any) -> RenderableType:
    """A payload as indented, highlighted JSON (a string that is not JSON, as text)."""
    if isinstance(value, str):
        return Text(value)
    return JSON(json.dumps(value, ensure_ascii=False), indent=2)


class TextScreen(ModalScreen[None]):
    DEFAULT_CSS = """
    TextScreen { align: center middle; }
    TextScreen > VerticalScroll {
        width: 90%; height: 90%; border: thick $accent; background: $surface; padding: 0 1;
    }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q", "dismiss", "close"),
        Binding("j", "scroll(1)", show=False),
        Binding("k", "scroll(-1)", show=False),
    ]

    def __init__(self, title: str, parts: list[RenderableType]) -> None:
        super().__init__()
        self.title_text = title
        self.parts = parts

    def compose(self) -> ComposeResult:
        with VerticalScroll() as scroll:
            scroll.border_title = self.title_text
            scroll.border_subtitle = "j/k scroll · esc closes"
            yield Static(Group(*self.parts), id="body")

    def on_mount(self) -> None:
        self.query_one(VerticalScroll).focus()

    def action_scroll(self, lines: int) -> None:
        self.query_one(VerticalScroll).scroll_relative(y=lines, animate=False)


def peek_parts(result: PeekResult) -> list[RenderableType]:
    """``admin peek --json``'s entries, each whole, as pretty JSON."""
    if not result.entries:
        return [Text(f"no job in {result.requested} ({result.kind})")]
    parts: list[RenderableType] = []
    for position, peeked in enumerate(result.entries, 1):
        parts.append(Text(f"#{position} · queue {peeked.entry.queue}", style="bold"))
        parts.append(pretty(peeked.payload()))
    return parts


def job_parts(record: JobRecord | None, peeked: Peeked, missing: str) -> list[RenderableType]:
    """``admin job ID``'s table (or why there is none), then the whole payload."""
    head: RenderableType = render.job_table(record) if record else Text(missing, style="italic")
    return [head, Text("payload", style="bold"), pretty(peeked.payload())]
