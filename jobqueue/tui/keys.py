"""Every key of the TUI, once: the bindings are built from this table, and the help screen
and docs/tui.md list it, so no key goes undocumented."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Key:
    keys: str  # Textual key names, comma-separated
    action: str  # the MainScreen action it runs
    label: str  # the help screen's (and the footer's) words
    where: str = "any tab"
    footer: str = ""  # its word in the footer (only the few an operator needs first)


KEYS: tuple[Key, ...] = (
    Key("tab", "next_tab", "next tab", footer="tabs"),
    Key("shift+tab", "previous_tab", "previous tab"),
    Key("r", "refresh", "refresh now (Keys tab: SCAN again)", footer="refresh"),
    Key("j,down", "cursor(1)", "next row"),
    Key("k,up", "cursor(-1)", "previous row"),
    Key("p", "peek", "peek the selected queue (a job tab: open the job)", footer="peek"),
    Key("enter", "open", "open the selected row: a queue's peek, a job's record"),
    Key(
        "b",
        "bench",
        "bench: tab cycles fields, enter runs, esc cancels/leaves",
        footer="bench",
    ),
    Key("c", "chart", "charts: queue lengths and throughput this session", footer="charts"),
    Key("f,slash", "filter", "filter rows (fuzzy, any case); esc clears", footer="filter"),
    Key("R", "requeue_selected", "requeue the selected dead job", "Dead-letter"),
    Key("F", "requeue_filtered", "requeue every dead job the filter matches", "Dead-letter"),
    Key("X", "delete_selected", "delete the selected dead job", "Dead-letter"),
    Key("N", "run_now", "run the selected scheduled job now", "Scheduled"),
    Key("D", "purge_dlq", "purge every dead-letter queue (confirm shows the count)"),
    Key("A", "purge_all", "purge every key of the namespace (needs --dev)"),
    Key("t", "toggle_theme", "light / dark theme"),
    Key("escape,question_mark", "help", "clear the filter, else help (this screen)", footer="help"),
    Key("q", "quit", "quit", footer="quit"),
)

MOUSE: tuple[tuple[str, str], ...] = (
    ("wheel", "scroll the table"),
    ("hover", "highlight the row under the pointer"),
    ("left click", "select a row (again: open it)"),
    ("right click", "peek the queue, or open the job, under the pointer"),
)
