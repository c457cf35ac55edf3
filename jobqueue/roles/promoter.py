"""The promoter: moves due jobs from each queue's scheduled set to the queue, in a thread.

One runs in every worker supervisor. Promotion is one atomic script per call (promote.lua),
so any number of promoters may run at once without moving a job twice; due times are Redis'
clock, so promoters on hosts whose clocks disagree still agree on what is due.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

from jobqueue.engine import Engine, Reconnect, RedisError
from jobqueue.faults import crash_point

BATCH = 500


class Promoter(threading.Thread):
    def __init__(self, engine: Engine, queues: Sequence[str], interval: float) -> None:
        super().__init__(name="jobqueue-promoter", daemon=True)
        self.engine = engine
        self.queues = list(queues)
        self.interval = interval
        self._halt = threading.Event()
        self._reconnect = Reconnect(engine.outage, "jobqueue.promoter")

    def run(self) -> None:
        wait = self.interval
        while not self._halt.wait(wait):
            try:
                for queue in self.queues:
                    moved = BATCH
                    while moved == BATCH:
                        moved = self.engine.promote(queue, BATCH)
                        if moved:
                            crash_point("promoted")
            except RedisError as exc:
                wait = self._reconnect.failed(exc)
                continue
            self._reconnect.succeeded()
            wait = self.interval

    def halt(self) -> None:
        """Stop after the current pass (join it to wait)."""
        self._halt.set()
