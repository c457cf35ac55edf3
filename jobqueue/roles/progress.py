"""How a producer pass shows its progress: a rich bar on a terminal, log lines otherwise.

The only roles module allowed to import rich (ruff's banned-api elsewhere): the producer
talks to a :class:`Reporter` and never knows which one it has. On a terminal the bar is
transient and a one-line summary stays behind; when stderr is not a terminal (systemd, cron,
a container) a structured line is logged at most every ``LOG_EVERY`` seconds, then the
summary as one structured line, so logs stay greppable and small.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Protocol

from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from jobqueue.observe.logs import get_logger

log: Any = get_logger("jobqueue.producer")

LOG_EVERY = 10.0


class Counts(Protocol):
    """What a reporter reads (``ProducerSummary`` has these); kept structural so that this
    module does not import the producer that imports it."""

    seen: int
    enqueued: int
    skipped_duplicate: int
    skipped_error: int


class Reporter(Protocol):
    def update(self, counts: Counts) -> None:
        """Called after every batch; cheap, may ignore calls."""

    def finish(self, counts: Counts, elapsed: float) -> None:
        """Called once at the end of a pass with its final counts."""


def count_fields(counts: Counts, elapsed: float) -> dict[str, Any]:
    """The counts as log fields, with the walk rate in files per second."""
    return {
        "seen": counts.seen,
        "enqueued": counts.enqueued,
        "skipped_duplicate": counts.skipped_duplicate,
        "skipped_error": counts.skipped_error,
        "elapsed_s": round(elapsed, 3),
        "files_per_s": round(counts.seen / elapsed, 1) if elapsed > 0 else 0.0,
    }


def summary_line(label: str, counts: Counts, elapsed: float) -> str:
    """The one line an operator reads at the end: ``producer: 3 seen, 2 enqueued, ...``."""
    rate = counts.seen / elapsed if elapsed > 0 else 0.0
    return (
        f"{label}: {counts.seen} seen, {counts.enqueued} enqueued, "
        f"{counts.skipped_duplicate} duplicate, "
        f"{counts.skipped_error} failed in {elapsed:.2f}s ({rate:.0f} files/s)"
    )


class QuietReporter:
    """Shows nothing: for callers that print their own result (``admin enqueue``)."""

    def update(self, counts: Counts) -> None:
        pass

    def finish(self, counts: Counts, elapsed: float) -> None:
        pass


class LogReporter:
    """Not a terminal: a progress line every ``every`` seconds, then the summary line."""

    def __init__(self, label: str, every: float = LOG_EVERY) -> None:
        self.label = label
        self.every = every
        self.started = time.monotonic()
        self.last = self.started

    def update(self, counts: Counts) -> None:
        now = time.monotonic()
        if now - self.last >= self.every:
            self.last = now
            log.info(f"{self.label} progress", **count_fields(counts, now - self.started))

    def finish(self, counts: Counts, elapsed: float) -> None:
        log.info(f"{self.label} pass done", **count_fields(counts, elapsed))


class RichReporter:
    """A terminal: a live line with the counts and the rate, replaced by the summary."""

    def __init__(self, label: str, console: Console) -> None:
        self.label = label
        self.console = console
        self.started = time.monotonic()
        self.progress = Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            TimeElapsedColumn(),
            console=console,
            transient=True,
        )
        self.task = self.progress.add_task(self._describe(None))

    def _describe(self, counts: Counts | None) -> str:
        if counts is None:
            return f"{self.label}: walking"
        elapsed = time.monotonic() - self.started
        rate = counts.seen / elapsed if elapsed > 0 else 0.0
        return (
            f"{self.label}: {counts.seen} seen, {counts.enqueued} enqueued, "
            f"{counts.skipped_duplicate + counts.skipped_error} skipped, {rate:.0f} files/s"
        )

    def update(self, counts: Counts) -> None:
        self.progress.update(self.task, description=self._describe(counts))

    def finish(self, counts: Counts, elapsed: float) -> None:
        self.progress.stop()
        self.console.print(summary_line(self.label, counts, elapsed), markup=False, highlight=False)


@contextmanager
def quiet_reporter(_label: str) -> Iterator[Reporter]:
    """A reporter that shows nothing, as a context manager like :func:`open_reporter`."""
    yield QuietReporter()


@contextmanager
def open_reporter(
    label: str, terminal: bool | None = None, console: Console | None = None
) -> Iterator[Reporter]:
    """A reporter for one pass; ``terminal`` defaults to whether stderr is a terminal."""
    if terminal is None:
        terminal = sys.stderr.isatty()
    if not terminal:
        yield LogReporter(label)
        return
    reporter = RichReporter(label, console or Console(stderr=True, highlight=False))
    reporter.progress.start()
    try:
        yield reporter
    finally:
        reporter.progress.stop()
