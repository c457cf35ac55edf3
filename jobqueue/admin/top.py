"""``admin top``: a live terminal dashboard (rich Live) over ``commands.overview``.

Designed for 80x24 first. One frame shows, per queue, the ``admin stats`` columns under the
same names; then completions and failures per second (from the monotonic counters in each
queue's stats hash, so every worker's work counts, not just this host's) beside a sparkline
of the pending depth; then the workers and the breaker states they publish. Figures never
wrap or shorten: the worker list takes the lines left, says which rows it shows and how
many it hides, and scrolls (j/k or arrows by a row, space/b or PgDn/PgUp by a page).

A failed sample (Redis gone) keeps the last figures, dimmed, under a STALE line that gives
their time; the header's clock is the time of the last good sample, never a ticking one.

``Dashboard`` holds the history and renders frames; it needs no terminal, so tests render a
frame to a string (``Dashboard.text``). ``run_top`` drives the interactive screen;
``print_frames`` writes plain frames when stdout is not a terminal (one per refresh, for a
pipe or a log) or once with ``--once``; neither offers keys, so neither mentions them.
"""

from __future__ import annotations

import io
import os
import sys
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from rich.console import Console, Group, RenderableType
from rich.table import Table
from rich.text import Text

from jobqueue.admin import render
from jobqueue.admin.commands import Overview, WorkerRow, overview, session
from jobqueue.admin.keys import PAGE_KEYS, QUIT_KEYS, ROW_KEYS, KeyReader, Keys
from jobqueue.config import Settings, format_duration
from jobqueue.engine import RedisError
from jobqueue.errors import JobQueueError

SPARK = "▁▂▃▄▅▆▇█"
HISTORY = 30
WORKER_ROWS = 8
HINT = "q quits"


def sparkline(values: Sequence[int], width: int = HISTORY) -> str:
    """One block character per value, scaled to the largest; empty history is blank."""
    shown = list(values)[-width:]
    if not shown:
        return ""
    top = max(shown)
    if top <= 0:
        return SPARK[0] * len(shown)
    return "".join(SPARK[min(len(SPARK) - 1, round(v / top * (len(SPARK) - 1)))] for v in shown)


@dataclass(frozen=True, slots=True)
class Rates:
    done: float | None = None  # completions per second
    failed: float | None = None  # retries + dead-letters per second


def _failures(counters: dict[str, int]) -> int:
    return counters.get("retried", 0) + counters.get("dead", 0)


class Dashboard:
    """History of samples and the frame drawn from them, fitted to a terminal's size."""

    def __init__(self, title: str = "jobqueue", refresh: float = 1.0, hint: str = "") -> None:
        self.title = title
        self.refresh = refresh
        self.hint = hint  # the keys line; only an interactive dashboard has one
        self.current: Overview | None = None
        self.error = ""
        self.depths: dict[str, deque[int]] = {}
        self.rates: dict[str, Rates] = {}
        self._last: tuple[float, Overview] | None = None
        self.sampled_at: float | None = None  # wall clock of the last good sample
        self.failed_at: float | None = None  # wall clock of the failure now shown
        self.offset = 0  # first worker row shown
        self.page = WORKER_ROWS  # worker rows the last frame had room for

    def update(self, sample: Overview, at: float, wall: float | None = None) -> None:
        """Record a sample taken at monotonic time ``at``."""
        for label, counts in sample.stats.queues.items():
            self.depths.setdefault(label, deque(maxlen=HISTORY)).append(counts.pending)
        if self._last is not None and at > self._last[0]:
            self.rates = self._rates(self._last[1], sample, at - self._last[0])
        self._last = (at, sample)
        self.current = sample
        self.error = ""
        self.sampled_at = time.time() if wall is None else wall
        self.failed_at = None

    def fail(self, message: str, wall: float | None = None) -> None:
        """A failed sample: the frame keeps the last numbers and says they are stale."""
        self.error = message
        self.failed_at = time.time() if wall is None else wall

    def scroll(self, rows: int) -> None:
        """Move the worker list by ``rows`` (the frame clamps it to what exists)."""
        self.offset = max(0, self.offset + rows)

    @staticmethod
    def _rates(old: Overview, new: Overview, seconds: float) -> dict[str, Rates]:
        rates = {}
        for label, counts in new.stats.queues.items():
            before = old.stats.queues.get(label)
            if before is None:
                continue
            done = counts.counters.get("completed", 0) - before.counters.get("completed", 0)
            failed = _failures(counts.counters) - _failures(before.counters)
            rates[label] = Rates(max(0, done) / seconds, max(0, failed) / seconds)
        return rates

    # -- rendering ------------------------------------------------------------------------

    def render(self, console: Console | None = None, height: int | None = None) -> RenderableType:
        """The frame; with ``height``, the worker list is cut to fit it (saying how many
        rows are hidden) and the rest of the frame never is."""
        parts: list[RenderableType] = [self._header(), *self._status()]
        if self.current is None:
            return Group(*parts)
        parts += [self._counts(self.current), self._flow(), self._summary(self.current)]
        rows = self.current.workers
        if height is None or console is None:
            return Group(*parts, render.workers_table(rows, now=self.sampled_at))
        budget = height - _lines(console, Group(*parts))
        return Group(*parts, self._worker_window(console, rows, budget))

    def _header(self) -> Text:
        when = _clock(self.sampled_at) if self.sampled_at is not None else "no sample yet"
        every = format_duration(self.refresh)
        return Text(f"{self.title} · {when} · every {every}", style="bold")

    def _status(self) -> list[Text]:
        if not self.error:
            return []
        if self.sampled_at is None:
            return [Text(f"redis: {self.error}", style="bold red")]
        stale = render.fmt_age((self.failed_at or self.sampled_at) - self.sampled_at)
        return [
            Text(
                f"STALE: figures from {_clock(self.sampled_at)} ({stale} ago); redis: {self.error}",
                style="bold red",
            )
        ]

    def _counts(self, sample: Overview) -> Table:
        """The ``admin stats`` columns, under the same names."""
        table = render.data_table(style="dim" if self.error else None)
        table.add_column("queue", overflow="fold")
        for state in render.STATES:
            render.number_column(table, state)
        for label, counts in sample.stats.queues.items():
            render.add_row(table, label, *render.state_counts(counts))
        return table

    def _flow(self) -> Table:
        table = render.data_table(style="dim" if self.error else None)
        table.add_column("queue", overflow="fold")
        render.number_column(table, "completed/s")
        render.number_column(table, "failed/s")
        table.add_column(f"pending, last {HISTORY}", overflow="crop", no_wrap=True)
        for label in self.depths:
            rate = self.rates.get(label, Rates())
            render.add_row(
                table,
                label,
                render.fmt_rate(rate.done),
                render.fmt_rate(rate.failed),
                Text(sparkline(self.depths[label]), style="cyan"),
            )
        return table

    def _summary(self, sample: Overview) -> Text:
        stats = sample.stats
        done = [r.done for r in self.rates.values() if r.done is not None]
        failed = [r.failed for r in self.rates.values() if r.failed is not None]
        return Text(  # two short lines: a wrap never parts a label from its figure
            f"completed {render.fmt_rate(sum(done) if done else None)}/s · "
            f"failed {render.fmt_rate(sum(failed) if failed else None)}/s · "
            f"dead_letter {stats.dead_letter}\n"
            f"workers: {render.fmt_workers(stats.workers, stats.registered)} · "
            f"breakers: {render.fmt_breakers(sample.breakers)}",
            style="bold yellow" if "open" in sample.breakers else "",
        )

    def _worker_window(self, console: Console, rows: list[WorkerRow], budget: int) -> Group:
        """As many worker rows from ``offset`` as fit in ``budget`` lines (binary search:
        rows fold at narrow widths, so their height is measured, not assumed), then a line
        that says which rows these are."""

        def table(count: int) -> Group:
            start = min(self.offset, max(0, len(rows) - count))
            shown = rows[start : start + count]
            workers = render.workers_table(shown, now=self.sampled_at, compact=True)
            workers.caption = None  # the line below, as wide as the frame, says it
            return Group(workers, Text(self._window_caption(rows, start, len(shown))))

        low, high = 0, len(rows)
        while low < high:
            middle = (low + high + 1) // 2
            if _lines(console, table(middle)) <= budget:
                low = middle
            else:
                high = middle - 1
        self.offset = min(self.offset, max(0, len(rows) - low))
        self.page = max(1, low)
        return table(low)

    def _window_caption(self, rows: list[WorkerRow], start: int, shown: int) -> str:
        live = sum(1 for r in rows if r.alive)
        caption = f"workers: {render.fmt_workers(live, len(rows))}"
        if shown == len(rows):
            window = ""
        elif shown == 0:
            window = f" · {len(rows)} hidden: the terminal is too short"
        else:
            window = f" · rows {start + 1}-{start + shown} of {len(rows)}"
            window += " (j/k scroll)" if self.hint else f", {len(rows) - shown} hidden"
        return caption + window + (f" · {self.hint}" if self.hint else "")

    def text(self, width: int = 80, height: int | None = None) -> str:
        """One frame as plain text, without a terminal (tests, docs/top.txt, pipes)."""
        console = Console(
            record=True, width=width, height=height or 24, file=io.StringIO(), markup=False
        )
        console.print(self.render(console, height))
        return console.export_text()


def _clock(wall: float) -> str:
    return datetime.fromtimestamp(wall).strftime("%H:%M:%S")


def _lines(console: Console, renderable: RenderableType) -> int:
    return len(console.render_lines(renderable, console.options.update(height=None), pad=False))


def sample_into(dashboard: Dashboard, fetch: Callable[[], Overview]) -> None:
    """Take one sample; a Redis failure shows in the frame instead of ending the dashboard."""
    try:
        dashboard.update(fetch(), time.monotonic())
    except (*RedisError, JobQueueError) as exc:
        dashboard.fail(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)


def _steer(dashboard: Dashboard, key: str | None) -> None:
    """Scroll the worker list: a row (j/k, arrows) or a page (space/b, PgDn/PgUp)."""
    if key in ROW_KEYS:
        dashboard.scroll(ROW_KEYS[key])
    elif key in PAGE_KEYS:
        dashboard.scroll(PAGE_KEYS[key] * dashboard.page)


def run_top(
    fetch: Callable[[], Overview],
    refresh: float,
    title: str = "jobqueue",
    console: Console | None = None,
    keys: Keys | None = None,
) -> int:
    """Sample every ``refresh`` seconds and redraw at once on a key, until ``q`` or
    Ctrl-C; returns the frames drawn."""
    from rich.live import Live  # noqa: PLC0415 - only the interactive path needs it

    dashboard = Dashboard(title, refresh, hint=HINT)
    frames = 0
    due = 0.0
    try:
        with keys or KeyReader() as reader, Live(console=console, auto_refresh=False) as live:
            while True:
                if time.monotonic() >= due:
                    sample_into(dashboard, fetch)
                    due = time.monotonic() + refresh
                frame = dashboard.render(live.console, live.console.size.height)
                live.update(frame, refresh=True)
                frames += 1
                key = reader.wait(max(0.0, due - time.monotonic()))
                if key in QUIT_KEYS:
                    return frames
                _steer(dashboard, key)
    except KeyboardInterrupt:
        return frames


def print_frames(
    fetch: Callable[[], Overview],
    refresh: float,
    title: str,
    console: Console,
    once: bool = False,
) -> int:
    """Frames as plain text, one per ``refresh``, every worker listed: for a pipe or a log
    (stdout not a terminal), or with ``once`` a single frame from two samples ``refresh``
    apart (so the rates are real). Ends on Ctrl-C or a closed pipe; returns the frames."""
    dashboard = Dashboard(title, refresh)
    sample_into(dashboard, fetch)
    frames = 0
    try:
        while True:
            time.sleep(refresh)
            sample_into(dashboard, fetch)
            if frames:
                console.line()
            console.print(dashboard.render())
            frames += 1
            if once:
                return frames
    except KeyboardInterrupt:
        return frames
    except BrokenPipeError:  # `admin top | head`: stop quietly, and stay quiet at exit
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return frames


def run(settings: Settings, refresh: float, once: bool = False) -> None:
    """``admin top``: the live dashboard on a terminal; plain frames, one per refresh, when
    stdout is not one; a single frame with ``once``."""
    console = render.stdout_console()
    with session(settings) as engine:
        title = f"jobqueue top · {settings.redis.namespace} @ {engine.target.display}"

        def fetch() -> Overview:
            return overview(engine, settings, with_jobs=True)

        if console.is_terminal and not once:
            run_top(fetch, refresh, title, console)
        else:
            print_frames(fetch, refresh, title, console, once)
