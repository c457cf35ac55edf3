"""The main screen: five tabs of tables (Queues, Keys, Workers, Dead-letter, Scheduled),
the filter, the status line and the footer, and every key's action (``keys.KEYS``).

Each action is a thin adapter: it calls one admin function on a worker thread
(``run_blocking``), and a change is asked about first (``ConfirmScreen``, with the count of
the change's own dry run). Errors come back as one-line notifications, never a traceback.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, TypeVar, cast

from rich.console import RenderableType
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Input, Static, TabbedContent, TabPane

from jobqueue.admin import commands, repairs
from jobqueue.engine import JobRecord
from jobqueue.errors import JobQueueError
from jobqueue.tui import rows
from jobqueue.tui.keys import KEYS
from jobqueue.tui.screens.bench import BenchScreen
from jobqueue.tui.screens.chart import ChartScreen
from jobqueue.tui.screens.confirm import ConfirmScreen
from jobqueue.tui.screens.help import HelpScreen
from jobqueue.tui.screens.text import TextScreen, job_parts, peek_parts
from jobqueue.tui.widgets.status import StatusLine, clock
from jobqueue.tui.widgets.table import RowTable

if TYPE_CHECKING:
    from jobqueue.admin.repairs import JobAction
    from jobqueue.tui.app import JobqueueApp

T = TypeVar("T")
PEEK_N = 20
TABS = (
    ("queues", "Queues", rows.QUEUE_COLUMNS),
    ("keys", "Keys", rows.KEY_COLUMNS),
    ("workers", "Workers", rows.WORKER_COLUMNS),
    ("dead", "Dead-letter", rows.DEAD_COLUMNS),
    ("scheduled", "Scheduled", rows.SCHEDULED_COLUMNS),
)


class Report(Protocol):
    def line(self) -> str: ...


class MainScreen(Screen[None]):
    DEFAULT_CSS = """
    MainScreen TabbedContent { height: 1fr; }
    MainScreen TabPane { padding: 0; }
    MainScreen RowTable { height: 1fr; }
    MainScreen TabbedContent.-stale RowTable { text-opacity: 55%; }
    MainScreen #census { padding: 0 1; }
    MainScreen #filter { display: none; }
    MainScreen #filter.-shown { display: block; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding(key.keys, key.action, key.footer or key.label, show=bool(key.footer))
        for key in KEYS
    ]

    def __init__(self) -> None:
        super().__init__()
        self.filter_text = ""
        self.census: dict[str, Any] | None = None

    @property
    def jq(self) -> JobqueueApp:
        return cast("JobqueueApp", self.app)

    def compose(self) -> ComposeResult:
        with TabbedContent(id="tabs"):
            for pane_id, title, columns in TABS:
                with TabPane(title, id=pane_id):
                    if pane_id == "keys":
                        yield Static("r scans the keyspace (SCAN, never KEYS)", id="census")
                    yield RowTable(columns, id=f"{pane_id}-table")
        yield Input(placeholder="filter: fuzzy, any case · enter keeps · esc clears", id="filter")
        yield StatusLine("connecting…", id="status")
        yield Footer()

    # -- showing ---------------------------------------------------------------------------

    def table(self, pane_id: str) -> RowTable:
        return self.query_one(f"#{pane_id}-table", RowTable)

    @property
    def active(self) -> str:
        return self.query_one(TabbedContent).active

    def show_sample(self) -> None:
        self.query_one(TabbedContent).remove_class("-stale")
        self.fill()
        self.update_status()

    def show_failure(self) -> None:
        self.query_one(TabbedContent).add_class("-stale")
        self.update_status()

    def update_status(self) -> None:
        status, sample = self.query_one(StatusLine), self.jq.sample
        if self.jq.error:
            status.disconnected(self.jq.error, sample.at if sample else None, self.jq.clock())
        elif sample is not None:
            status.connected(self.jq.source.address, sample.server, sample.at, self.filter_text)

    def fill(self) -> None:
        """Every table from the last sample (and census), through the filter."""
        sample, query = self.jq.sample, self.filter_text
        if sample is not None:
            self.table("queues").show(rows.queue_rows(sample), query)
            self.table("workers").show(rows.worker_rows(sample), query)
            self.table("dead").show(rows.dead_rows(sample), query)
            self.table("scheduled").show(rows.scheduled_rows(sample, self.jq.clock()), query)
        if self.census is not None:
            self.table("keys").show(rows.key_rows(self.census), query)

    def show_census(self, census: dict[str, Any]) -> None:
        self.census = census
        caption = rows.census_caption(census, clock(self.jq.clock()))
        self.query_one("#census", Static).update(caption)
        self.fill()

    @on(TabbedContent.TabActivated)
    def _tab_shown(self, event: TabbedContent.TabActivated) -> None:
        self.table(event.pane.id or "queues").focus()
        if event.pane.id == "keys" and self.census is None:
            self.scan_keys()

    # -- running admin calls ----------------------------------------------------------------

    def run_blocking(self, call: Callable[[], T], then: Callable[[T], None]) -> None:
        """``call`` on a worker thread; ``then`` with its result on the UI thread, or its
        error as one notification."""

        def work() -> None:
            try:
                result = call()
            except JobQueueError as exc:
                self.app.call_from_thread(self.notify, str(exc), severity="error", timeout=8)
                return
            self.app.call_from_thread(then, result)

        self.run_worker(work, thread=True, group="admin", exit_on_error=False)

    def confirm_then(self, question: str, change: Callable[[], Report]) -> None:
        """Ask; on yes run ``change``, say what it did, and sample again."""

        def answered(yes: bool | None) -> None:
            if yes:
                self.run_blocking(change, self.changed)

        self.app.push_screen(ConfirmScreen(question), answered)

    def changed(self, report: Report) -> None:
        self.notify(report.line())
        self.jq.sample_now()

    def open_text(self, title: str, parts: list[RenderableType]) -> None:
        self.app.push_screen(TextScreen(title, parts))

    def scan_keys(self) -> None:
        settings = self.jq.settings
        self.run_blocking(lambda: commands.stats_keys(settings), self.show_census)

    def selected_job(self, pane_id: str, key: str) -> rows.Row | None:
        """The selected row of ``pane_id`` when it is a job; else a note saying why not."""
        if self.active != pane_id:
            title = dict((p, t) for p, t, _ in TABS)[pane_id]
            self.notify(f"{key} works on the {title} tab", severity="warning")
            return None
        row = self.table(pane_id).selected()
        if row is None or row.job_id is None:
            self.notify("select a job first (a malformed entry has no id)", severity="warning")
            return None
        return row

    # -- keys ------------------------------------------------------------------------------

    def _switch(self, step: int) -> None:
        ids = [pane_id for pane_id, _, _ in TABS]
        tabs = self.query_one(TabbedContent)
        tabs.active = ids[(ids.index(tabs.active) + step) % len(ids)]

    def action_next_tab(self) -> None:
        self._switch(1)

    def action_previous_tab(self) -> None:
        self._switch(-1)

    def action_refresh(self) -> None:
        self.jq.sample_now()
        if self.active == "keys":
            self.scan_keys()

    def action_cursor(self, step: int) -> None:
        table = self.table(self.active)
        table.move_cursor(row=max(0, table.cursor_row + step), animate=False)

    @on(RowTable.PeekRequested)
    def action_peek(self) -> None:
        """The selected queue's next jobs; on a job tab, the selected job."""
        if self.active in ("dead", "scheduled"):
            self.action_open()
            return
        if self.active != "queues":
            self.notify("p peeks a queue (Queues tab) or a job (Dead-letter, Scheduled)")
            return
        row = self.table("queues").selected()
        if row is None:
            return
        settings, queue = self.jq.settings, row.key
        self.run_blocking(
            lambda: commands.peek(settings, queue, PEEK_N),
            lambda result: self.open_text(f"peek {queue}: next {PEEK_N}", peek_parts(result)),
        )

    @on(DataTable.RowSelected)
    def action_open(self) -> None:
        """A queue row peeks; a job row opens the job (its record and whole payload)."""
        row = self.table(self.active).selected()
        if self.active == "queues":
            if row is not None:
                self.action_peek()
            return
        if row is None or row.peeked is None:
            return
        peeked, settings, job_id = row.peeked, self.jq.settings, row.job_id

        def read() -> tuple[JobRecord | None, str]:
            if job_id is None:
                return None, "not a job: no record (the raw entry follows)"
            try:
                return commands.job(settings, job_id), ""
            except JobQueueError as exc:
                return None, str(exc)

        self.run_blocking(
            read,
            lambda found: self.open_text(f"job {row.key}", job_parts(found[0], peeked, found[1])),
        )

    def action_bench(self) -> None:
        self.app.push_screen(BenchScreen(self.jq.settings))

    def action_chart(self) -> None:
        self.app.push_screen(ChartScreen(self.jq.history))

    def action_filter(self) -> None:
        box = self.query_one("#filter", Input)
        box.add_class("-shown")
        box.focus()

    @on(Input.Changed, "#filter")
    def _filter_changed(self, event: Input.Changed) -> None:
        self.filter_text = event.value
        self.fill()
        self.update_status()

    @on(Input.Submitted, "#filter")
    def _filter_kept(self) -> None:
        self.table(self.active).focus()

    def action_help(self) -> None:
        """esc: clear the filter when there is one, else the help overlay."""
        box = self.query_one("#filter", Input)
        if self.filter_text or box.has_class("-shown"):
            box.value = ""
            box.remove_class("-shown")
            self.filter_text = ""
            self.fill()
            self.update_status()
            self.table(self.active).focus()
            return
        self.app.push_screen(HelpScreen())

    def _act_on_selected(self, pane_id: str, key: str, action: JobAction, question: str) -> None:
        """Confirm, then ``act_on_jobs`` on the selected job (``question`` names {id}, {queue})."""
        row = self.selected_job(pane_id, key)
        if row is None or row.job_id is None:
            return
        ids, settings = [row.job_id], self.jq.settings
        self.confirm_then(
            question.format(id=row.job_id, queue=row.cells[1]),
            lambda: repairs.act_on_jobs(settings, action, ids),
        )

    def action_requeue_selected(self) -> None:
        question = (
            "Requeue dead job {id} (queue {queue})?\n1 job goes back to pending, attempts reset."
        )
        self._act_on_selected("dead", "R", "requeue", question)

    def action_requeue_filtered(self) -> None:
        if self.active != "dead":
            self.notify("F works on the Dead-letter tab", severity="warning")
            return
        ids = [row.job_id for row in self.table("dead").shown if row.job_id is not None]
        if not ids:
            self.notify("no dead job matches the filter", severity="warning")
            return
        which = f"matching filter {self.filter_text!r}" if self.filter_text else "(no filter: all)"
        self.confirm_then(
            f"Requeue {len(ids)} dead jobs {which}?\nThey go back to pending, attempts reset.",
            lambda: repairs.act_on_jobs(self.jq.settings, "requeue", ids),
        )

    def action_delete_selected(self) -> None:
        question = "Delete dead job {id} (queue {queue}) for good?\n1 job will be gone."
        self._act_on_selected("dead", "X", "delete", question)

    def action_run_now(self) -> None:
        question = (
            "Run scheduled job {id} (queue {queue}) now?\n1 job goes to the head of its queue."
        )
        self._act_on_selected("scheduled", "N", "run-now", question)

    def action_purge_dlq(self) -> None:
        settings = self.jq.settings

        def ask(plan: repairs.PurgeReport) -> None:
            detail = ", ".join(f"{p}: {n}" for p, n in plan.per_queue.items())
            self.confirm_then(
                f"Purge every dead-letter queue?\n{plan.total} jobs will be deleted ({detail}).",
                lambda: repairs.purge_shown(settings, plan),
            )

        self.run_blocking(lambda: repairs.purge_dlq(settings, False, None, True), ask)

    def action_purge_all(self) -> None:
        settings = self.jq.settings
        if not self.jq.dev:
            self.notify(
                "A (purge-all) is for development only: start the TUI with --dev "
                "(the CLI needs admin purge-all --dev --yes)",
                severity="error",
                timeout=8,
            )
            return

        def ask(plan: repairs.PurgeAllReport) -> None:
            self.confirm_then(
                f"Delete every key of namespace {plan.namespace!r}?\n"
                f"{plan.keys} keys will be deleted (found by SCAN). Development only.",
                lambda: repairs.purge_all(settings, True, True, False),
            )

        self.run_blocking(lambda: repairs.purge_all(settings, True, False, True), ask)

    def action_toggle_theme(self) -> None:
        self.app.theme = "textual-light" if self.app.current_theme.dark else "textual-dark"

    async def action_quit(self) -> None:
        self.app.exit()
