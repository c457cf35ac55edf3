"""The reaper: finds dead workers through the registry (never SCAN) and recovers their jobs.

A worker is dead when its heartbeat key has expired (Redis' clock, ``heartbeat_ttl`` after
its last renewal), so recovery takes at most heartbeat_ttl + one reaper interval. Each job
goes back to its queue as one more attempt, or to the dead-letter list on its last one.
Several reapers may run at once: the reap script moves each job only once, and a worker that
came back to life before deregistration is left registered.
"""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any

from jobqueue.config import Settings
from jobqueue.engine import Engine, RedisError, RetryPolicy
from jobqueue.observe.ledger import Ledger
from jobqueue.observe.logs import get_logger
from jobqueue.observe.metrics import Metrics

log: Any = get_logger("jobqueue.reaper")


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

    def sweep(self) -> int:
        """Reap every dead worker once; returns how many jobs were recovered."""
        recovered = 0
        for worker_id, queues in self.engine.dead_workers().items():
            result = self.engine.reap(worker_id, queues or self.default_queues, self.policy)
            if not self.engine.deregister(worker_id, by_self=False):
                log.warning("worker came back before deregistration", worker=worker_id)
            per_queue = Counter(queue for queue, _ in result.jobs)
            for queue, count in per_queue.items():
                self.metrics.reaper_recovered.labels(queue).inc(count)
            for queue, job_id in result.jobs:
                self.ledger.record("reaped", worker_id, job_id, queue)
            recovered += len(result.jobs)
            log.info(
                "reaped dead worker",
                worker=worker_id,
                requeued=result.requeued,
                dead_lettered=result.dead,
                job_ids=[job_id for _, job_id in result.jobs],
            )
        return recovered

    def run(self) -> int:
        interval = self.settings.reaper.interval
        log.info("reaper started", interval_seconds=interval)
        while not self.stop.is_set():
            try:
                self.sweep()
            except RedisError as exc:
                log.warning("reaper sweep failed; will retry", error=str(exc))
            except Exception:  # recovery must go on whatever one sweep ran into
                log.exception("reaper sweep error; will retry")
            self.stop.wait(interval)
        self.ledger.close()
        return 0
