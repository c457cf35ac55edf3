"""What the TUI shows, as plain data: one ``Sample`` of the queues per refresh, read
through the admin layer on one engine kept open for the session, and the session's
``History`` for the charts. No Textual here: tests and other faces can read it directly.

A sample is taken on a worker thread; Redis errors become ``RedisUnavailable`` (one line),
which the App shows as "disconnected" while it keeps the last sample, marked stale.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from jobqueue.admin.commands import (
    Overview,
    Peeked,
    ServerInfo,
    held_job_ids,
    overview,
    peek_with,
    server_info,
)
from jobqueue.config import Settings
from jobqueue.engine import Engine, RedisError
from jobqueue.engine.connection import unreachable

LIST_LIMIT = 500  # entries per queue the Dead-letter and Scheduled tabs read
HISTORY = 3600  # samples the charts keep: an hour at the default 1s, two at 2s


@dataclass(frozen=True, slots=True)
class Sample:
    """Everything one refresh read, and when (wall clock, this machine's)."""

    at: float
    overview: Overview
    dead: list[Peeked]
    scheduled: list[Peeked]
    held: dict[str, list[str]]  # worker id -> ids of the jobs it holds
    server: ServerInfo


class Source:
    """The session's engine and the reads of one sample. Built without a PING: the TUI
    starts (and says "disconnected") even when Redis is down."""

    def __init__(self, settings: Settings, clock: Callable[[], float] = time.time) -> None:
        self.settings = settings
        self.clock = clock
        self.engine = Engine.from_settings(settings)

    @property
    def address(self) -> str:
        """Where Redis is, credentials redacted (``config.redact_url`` via the target)."""
        return self.engine.target.display

    def sample(self) -> Sample:
        engine, settings = self.engine, self.settings
        try:
            view = overview(engine, settings, with_jobs=True)
            return Sample(
                at=self.clock(),
                overview=view,
                dead=peek_with(engine, settings, "dead_letter", LIST_LIMIT).entries,
                scheduled=peek_with(engine, settings, "scheduled", LIST_LIMIT).entries,
                held={row.id: held_job_ids(engine, row) for row in view.workers if row.alive},
                server=server_info(engine),
            )
        except RedisError as exc:
            raise unreachable(engine.target, exc) from exc

    def close(self) -> None:
        self.engine.close()


class History:
    """Per sample: pending jobs per queue and completions per second (all queues, from the
    ``completed`` counters every worker bumps), for the session's charts."""

    def __init__(self, size: int = HISTORY) -> None:
        self.times: deque[float] = deque(maxlen=size)
        self.pending: dict[str, deque[int]] = {}
        self.throughput: deque[float] = deque(maxlen=size)
        self._size = size
        self._last: tuple[float, int] | None = None

    def add(self, sample: Sample) -> None:
        queues = sample.overview.stats.queues
        completed = sum(q.completed for q in queues.values())
        rate = 0.0
        if self._last is not None and sample.at > self._last[0]:
            rate = max(0, completed - self._last[1]) / (sample.at - self._last[0])
        self._last = (sample.at, completed)
        self.times.append(sample.at)
        self.throughput.append(rate)
        for label, counts in queues.items():
            self.pending.setdefault(label, deque(maxlen=self._size)).append(counts.pending)

    def seconds(self) -> list[float]:
        """Sample times as seconds since the first one (the charts' x axis)."""
        start = self.times[0] if self.times else 0.0
        return [t - start for t in self.times]
