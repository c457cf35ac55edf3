"""``b``: the bench form (``admin bench`` in a screen). tab cycles the fields, enter runs
with a progress bar, esc cancels a run (its unclaimed jobs are taken back out of the queue,
as on Ctrl-C in the CLI) or, when none runs, leaves. The report is the CLI's own table:
throughput and latency p50/p95/p99."""

from __future__ import annotations

from typing import ClassVar, Literal

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Grid, VerticalScroll
from textual.screen import ModalScreen
from textual.timer import Timer
from textual.widgets import Input, Label, ProgressBar, Static

from jobqueue.admin import render
from jobqueue.admin.bench import BenchControl, BenchOptions, BenchReport, run_bench
from jobqueue.config import Settings, parse_duration
from jobqueue.errors import JobQueueError, UsageError

InputType = Literal["integer", "number", "text"]  # Input(type=...)
FIELDS: tuple[tuple[str, str, str, InputType], ...] = (  # id, label, default, input type
    ("count", "count (jobs)", "100", "integer"),
    ("rate", "rate (jobs/s, 0 = unpaced)", "0", "number"),
    ("priority", "priority", "", "text"),
    ("payload_size", "payload size (bytes)", "0", "integer"),
    ("timeout", "timeout", "60s", "text"),
)


def parse_options(values: dict[str, str]) -> BenchOptions:
    """The form's text as BenchOptions; a bad field raises UsageError naming it."""
    try:
        count, rate, size = int(values["count"]), float(values["rate"]), int(values["payload_size"])
    except ValueError:
        raise UsageError("count and payload size are whole numbers, rate a number") from None
    try:
        timeout = parse_duration(values["timeout"])
    except ValueError as exc:
        raise UsageError(f"timeout: {exc}") from None
    if count < 1 or rate < 0 or size < 0:
        raise UsageError("count must be at least 1; rate and payload size must not be negative")
    return BenchOptions(count, rate, values["priority"] or None, size, timeout)


class BenchScreen(ModalScreen[None]):
    DEFAULT_CSS = """
    BenchScreen { align: center middle; }
    BenchScreen > VerticalScroll {
        width: 72; max-width: 98%; height: auto; max-height: 98%;
        border: thick $accent; background: $surface; padding: 0 1;
    }
    BenchScreen Grid { grid-size: 2; grid-columns: 28 1fr; height: auto; }
    BenchScreen #message { color: $error; }
    BenchScreen #progress { display: none; }
    BenchScreen #progress.-ran { display: block; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "leave", "cancel run / leave")]

    def __init__(self, settings: Settings) -> None:
        super().__init__()
        self.settings = settings
        self.control: BenchControl | None = None
        self.report: BenchReport | None = None
        self.ticker: Timer | None = None

    def compose(self) -> ComposeResult:
        with VerticalScroll(can_focus=False) as box:  # tab cycles the fields alone
            box.border_title = "bench · tab: next field · enter: run · esc: cancel/leave"
            with Grid():
                for field_id, label, default, kind in FIELDS:
                    yield Label(label)
                    placeholder = self.settings.producer.default_priority
                    yield Input(
                        default, placeholder=placeholder, type=kind, id=field_id, compact=True
                    )
            yield Static("", id="message")
            yield ProgressBar(total=None, show_eta=False, id="progress")
            yield Static("", id="report")

    def on_mount(self) -> None:
        self.query_one("#count", Input).focus()

    def on_input_submitted(self, _: Input.Submitted) -> None:
        if self.control is not None:
            return  # one run at a time
        values = {field_id: self.query_one(f"#{field_id}", Input).value for field_id, *_ in FIELDS}
        try:
            options = parse_options(values)
        except UsageError as exc:
            self.query_one("#message", Static).update(str(exc))
            return
        self.control = BenchControl()
        self.query_one("#message", Static).update("running… esc cancels")
        progress = self.query_one("#progress", ProgressBar)
        progress.update(total=options.count, progress=0)
        progress.add_class("-ran")
        self.ticker = self.set_interval(0.1, self._progress, name="bench-progress")
        self._run(options, self.control)

    @work(thread=True, exit_on_error=False)
    def _run(self, options: BenchOptions, control: BenchControl) -> None:
        try:
            report = run_bench(self.settings, options, control)
        except JobQueueError as exc:
            self.app.call_from_thread(self._finished, None, str(exc))
            return
        self.app.call_from_thread(self._finished, report, report.problem() or "done")

    def _progress(self) -> None:
        if self.control is not None:
            self.query_one("#progress", ProgressBar).update(progress=self.control.done)

    def _finished(self, report: BenchReport | None, message: str) -> None:
        self._progress()
        if self.ticker is not None:
            self.ticker.stop()
        self.control = None
        self.report = report
        self.query_one("#message", Static).update(message)
        if report is not None:
            self.query_one("#report", Static).update(render.bench_table(report))

    def action_leave(self) -> None:
        if self.control is not None:
            self.control.cancel.set()
            self.query_one("#message", Static).update("cancelling: taking unclaimed jobs back…")
            return
        self.dismiss()
