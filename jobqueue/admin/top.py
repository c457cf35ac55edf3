"""``admin top``: a live terminal dashboard (rich Live) over ``commands.overview``.

One frame shows, per queue, the pending depth with a sparkline of its recent history, the
scheduled/processing counts, throughput and failures per second (from the monotonic
counters in each queue's stats hash, so every worker's work counts, not just this host's),
the dead-letter size; then the workers and the breaker states they publish.

``Dashboard`` holds the history and renders frames; it needs no terminal, so tests render a
frame to a string (``Dashboard.text``). ``run_top`` drives it: refresh every ``refresh``
seconds, quit on ``q`` or Ctrl-C. A Redis outage shows in the frame; the dashboard keeps
trying rather than exiting.
"""

from __future__ import annotations

import io
import os
import select
import sys
import termios
import threading
import time
import tty
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from types import TracebackType
from typing import Any, Protocol, TextIO

from rich.console import Console, Group, RenderableType
from rich.table import Table
from rich.text import Text

from jobqueue.admin import render
from jobqueue.admin.commands import Overview, overview, session
from jobqueue.config import Settings, format_duration
from jobqueue.engine import RedisError
from jobqueue.errors import JobQueueError

SPARK = "▁▂▃▄▅▆▇█"
HISTORY = 30
WORKER_ROWS = 8
QUIT_KEYS = frozenset({"q", "Q"})


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
    """History of samples and the frame drawn from them."""

    def __init__(self, title: str = "jobqueue", refresh: float = 1.0) -> None:
        self.title = title
        self.refresh = refresh
        self.current: Overview | None = None
        self.error = ""
        self.depths: dict[str, deque[int]] = {}
        self.rates: dict[str, Rates] = {}
        self._last: tuple[float, Overview] | None = None
        self.updated_at = ""

    def update(self, sample: Overview, at: float) -> None:
        """Record a sample taken at monotonic time ``at``."""
        for label, counts in sample.stats.queues.items():
            self.depths.setdefault(label, deque(maxlen=HISTORY)).append(counts.pending)
        if self._last is not None and at > self._last[0]:
            self.rates = self._rates(self._last[1], sample, at - self._last[0])
        self._last = (at, sample)
        self.current = sample
        self.error = ""
        self.updated_at = datetime.now().strftime("%H:%M:%S")

    def fail(self, message: str) -> None:
        self.error = message
        self.updated_at = datetime.now().strftime("%H:%M:%S")

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

    def render(self) -> RenderableType:
        parts: list[RenderableType] = [self._header()]
        if self.error:
            parts.append(Text(f"redis: {self.error}", style="bold red"))
        if self.current is not None:
            parts += [self._queues(self.current), self._summary(self.current)]
            parts.append(render.workers_table(self.current.workers, limit=WORKER_ROWS))
        return Group(*parts)

    def _header(self) -> Text:
        every = format_duration(self.refresh)
        return Text(
            f"{self.title} · refresh {every} · {self.updated_at} · q or Ctrl-C quits",
            style="bold",
        )

    def _queues(self, sample: Overview) -> Table:
        table = Table(title="queues", title_justify="left", expand=False)
        table.add_column("queue")
        table.add_column("pending", justify="right")
        table.add_column(f"trend (last {HISTORY})", no_wrap=True, min_width=HISTORY)
        for column in ("sched", "proc", "done/s", "fail/s", "completed", "DLQ"):
            table.add_column(column, justify="right")
        for label, counts in sample.stats.queues.items():
            rate = self.rates.get(label, Rates())
            render.add_row(
                table,
                label,
                str(counts.pending),
                Text(sparkline(self.depths.get(label, ())), style="cyan"),
                str(counts.scheduled),
                str(counts.processing),
                _rate(rate.done),
                _rate(rate.failed),
                str(counts.completed),
                Text(str(counts.dead_letter), style="red" if counts.dead_letter else ""),
            )
        return table

    def _summary(self, sample: Overview) -> Text:
        stats = sample.stats
        done = [r.done for r in self.rates.values() if r.done is not None]
        failed = [r.failed for r in self.rates.values() if r.failed is not None]
        breakers = render.fmt_breakers(sample.breakers)
        return Text(
            f"throughput {_rate(sum(done) if done else None)} jobs/s · "
            f"failures {_rate(sum(failed) if failed else None)}/s · "
            f"DLQ {stats.dead_letter} · workers {stats.workers} live / "
            f"{stats.registered} registered · breakers: {breakers}",
            style="bold yellow" if "open" in sample.breakers else "",
        )

    def text(self, width: int = 110) -> str:
        """One frame as plain text, without a terminal (tests, docs/top.txt)."""
        console = Console(record=True, width=width, file=io.StringIO(), markup=False, emoji=False)
        console.print(self.render())
        return console.export_text()


def _rate(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


class KeyReader:
    """Single key presses from a terminal (cbreak mode, so Ctrl-C still interrupts).

    When the stream is not a terminal, ``wait`` only waits: Ctrl-C is the way out.
    """

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stdin
        self._saved: list[Any] | None = None
        self._idle = threading.Event()

    def _is_tty(self) -> bool:
        try:
            return self.stream.isatty()
        except ValueError:
            return False

    def __enter__(self) -> KeyReader:
        if self._is_tty():
            fd = self.stream.fileno()
            self._saved = termios.tcgetattr(fd)
            tty.setcbreak(fd)
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._saved is not None:
            termios.tcsetattr(self.stream.fileno(), termios.TCSADRAIN, self._saved)
            self._saved = None

    def wait(self, timeout: float) -> str | None:
        """The key pressed within ``timeout`` seconds, or None."""
        if self._saved is None:
            self._idle.wait(timeout)
            return None
        ready, _, _ = select.select([self.stream], [], [], timeout)
        if not ready:
            return None
        return os.read(self.stream.fileno(), 1).decode(errors="replace")


class Keys(Protocol):
    """What ``run_top`` needs from a keyboard; tests pass a scripted one."""

    def __enter__(self) -> Keys: ...

    def __exit__(self, *exc: object) -> None: ...

    def wait(self, timeout: float) -> str | None: ...


def sample_into(dashboard: Dashboard, fetch: Callable[[], Overview]) -> None:
    """Take one sample; a Redis failure shows in the frame instead of ending the dashboard."""
    try:
        dashboard.update(fetch(), time.monotonic())
    except (*RedisError, JobQueueError) as exc:
        dashboard.fail(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)


def run_top(
    fetch: Callable[[], Overview],
    refresh: float,
    title: str = "jobqueue",
    console: Console | None = None,
    keys: Keys | None = None,
) -> int:
    """Refresh every ``refresh`` seconds until ``q`` or Ctrl-C; returns the frames drawn."""
    from rich.live import Live  # noqa: PLC0415 - only the interactive path needs it

    dashboard = Dashboard(title, refresh)
    frames = 0
    try:
        with keys or KeyReader() as reader, Live(console=console, auto_refresh=False) as live:
            while True:
                sample_into(dashboard, fetch)
                live.update(dashboard.render(), refresh=True)
                frames += 1
                if reader.wait(refresh) in QUIT_KEYS:
                    return frames
    except KeyboardInterrupt:
        return frames


def run(settings: Settings, refresh: float, once: bool = False) -> None:
    """``admin top``: the live dashboard, or with ``once`` a single frame on stdout (two
    samples ``refresh`` apart, so the rates are real)."""
    title = f"jobqueue top · namespace {settings.redis.namespace}"
    with session(settings) as engine:

        def fetch() -> Overview:
            return overview(engine, settings, with_jobs=True)

        if not once:
            run_top(fetch, refresh, f"{title} · {engine.target.display}")
            return
        dashboard = Dashboard(title, refresh)
        sample_into(dashboard, fetch)
        time.sleep(refresh)
        sample_into(dashboard, fetch)
        render.stdout_console().print(dashboard.render())
