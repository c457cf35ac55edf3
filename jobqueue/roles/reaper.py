"""The reaper: finds dead workers through the registry (never SCAN) and recovers their jobs.

A worker is dead when its heartbeat key has expired (Redis' clock, ``heartbeat_ttl`` after
its last renewal), so recovery takes at most heartbeat_ttl + one reaper interval. (A worker
process that dies under a living supervisor is settled by the supervisor at once; the
reaper is for workers whose supervisor is gone too: a host lost, SIGKILL to the whole tree.)

Each job it had started goes back to its queue as one more attempt, or to the dead-letter
list on its last one; each job it had only claimed goes back untouched. A queue is reaped
only once the worker's lease there has expired too, and the entry leaves the registry only
when every list is empty and under the lease token the reaper saw, so a worker that comes
back from a stall and registers again is never removed, and its lists are never orphaned.
Several reapers may run at once: the scripts move each job once and each reaper counts only
what its own calls moved.
"""

from __future__ import annotations

import os
import socket
import threading
from typing import Any

from jobqueue.config import Settings
from jobqueue.engine import Engine, Reconnect, RedisError, RetryPolicy, token_of
from jobqueue.faults import crash_point
from jobqueue.observe.ledger import Ledger
from jobqueue.observe.logs import get_logger
from jobqueue.observe.metrics import Metrics

log: Any = get_logger("jobqueue.reaper")


def sweeper_info() -> dict[str, Any]:
    """Who swept, for ``admin workers``."""
    return {"host": socket.gethostname(), "pid": os.getpid()}


class Reaper:
    def __init__(
        self, settings: Settings, engine: Engine, metrics: Metrics, stop: threading.Event
    ) -> None:
        self.settings = settings
        self.engine = engine
        self.metrics = metrics
        self.stop = stop
        self.policy = RetryPolicy.from_config(settings.worker)
        self.default_queues = [settings.worker.queue_of(p) for p in settings.worker.priorities]
        self.ledger = Ledger(settings.observability.ledger.dir)
        self._reconnect = Reconnect(engine.outage, "jobqueue.reaper")

    def sweep(self) -> int:
        """Reap every dead worker once; returns how many jobs this sweep moved."""
        recovered = 0
        self.engine.registry.mark_sweep(sweeper_info(), self.settings.reaper.interval)
        for worker_id, info in self.engine.registry.expired().items():
            queues = [str(q) for q in info.get("queues") or self.default_queues]
            result = self.engine.reap(worker_id, queues, self.policy)
            crash_point("reaped")
            if not result.complete:
                log.info("worker's lease not yet expired everywhere; next sweep", worker=worker_id)
            elif not self.engine.registry.deregister(worker_id, token_of(info), by_owner=False):
                log.info("worker came back before deregistration", worker=worker_id)
            for queue, count in result.per_queue.items():
                self.metrics.reaper_recovered.labels(queue).inc(count)
            for queue, job_id in result.jobs:
                self.ledger.record("reaped", worker_id, job_id, queue)
            recovered += len(result.jobs) + result.released
            if result.jobs or result.released:
                log.info(
                    "reaped dead worker",
                    worker=worker_id,
                    requeued=result.requeued,
                    dead_lettered=result.dead,
                    handed_back_unstarted=result.released,
                    job_ids=[job_id for _, job_id in result.jobs],
                )
        return recovered

    def run(self) -> int:
        interval = self.settings.reaper.interval
        log.info("reaper started", interval_seconds=interval)
        while not self.stop.is_set():
            wait = interval
            try:
                self.sweep()
                self._reconnect.succeeded()
            except RedisError as exc:  # the process's Outage logs it, once
                wait = self._reconnect.failed(exc)
            except Exception:  # recovery must go on whatever one sweep ran into
                log.exception("reaper sweep error; will retry")
            self.stop.wait(wait)
        self.ledger.close()
        return 0
