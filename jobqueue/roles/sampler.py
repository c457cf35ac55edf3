"""Process-level observability glue: the queue sampler and the readiness check that
``/readyz`` runs. Roles may import the engine; ``observe`` may not, so this lives here.

Start one sampler per process (the role runner does), whatever roles the process runs: every
process exposes the same gauges (so alerts take ``max``, never ``sum``, over instances). A
pass is the engine Inspector's reads that ``admin stats`` makes, plus one LINDEX per queue
for the age of the job next in line: a few round trips per interval, never a scan.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import Any

from jobqueue.config import Settings
from jobqueue.engine import Engine, Inspector, RedisError
from jobqueue.errors import JobQueueError
from jobqueue.observe.logs import get_logger
from jobqueue.observe.metrics import DEPTH_STATES, Metrics

log: Any = get_logger("jobqueue.sampler")


class QueueSampler:
    """Every ``interval``, sets each queue's depth per state, its pending length
    (``queue_length``, the design's name) and the age of its oldest pending job."""

    def __init__(
        self, engine: Engine, metrics: Metrics, queues: Sequence[str], interval: float
    ) -> None:
        if interval <= 0:
            raise ValueError("interval must be > 0")
        self.engine = engine
        self.metrics = metrics
        self.queues = list(dict.fromkeys(queues))
        self.interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._failing = False

    def sample(self) -> dict[str, int]:
        """One pass: read and publish every queue's figures; returns the pending lengths.
        Raises RedisError."""
        inspector = Inspector(self.engine)
        stats = inspector.stats({queue: queue for queue in self.queues})
        created = inspector.oldest_pending(self.queues)
        now = time.time()
        m = self.metrics
        for queue, counts in stats.queues.items():
            m.queue_length.labels(queue=queue).set(counts.pending)
            for state in DEPTH_STATES:
                m.queue_depth.labels(queue=queue, state=state).set(getattr(counts, state))
            oldest = created[queue]
            age = 0.0 if oldest is None else max(0.0, now - oldest)
            m.queue_oldest_pending_age.labels(queue=queue).set(age)
        return {queue: counts.pending for queue, counts in stats.queues.items()}

    def _sample_logged(self) -> None:
        """Log the first failure and the recovery, not every failed pass."""
        try:
            self.sample()
        except RedisError as exc:
            if not self._failing:
                log.warning("queue sampling failed; will retry", error=str(exc))
            self._failing = True
            return
        if self._failing:
            log.info("queue sampling recovered")
        self._failing = False

    def _run(self) -> None:
        while True:
            try:
                self._sample_logged()
            except Exception:  # e.g. a closed log stream: the sampler must outlive it
                self._failing = True
            if self._stop.wait(self.interval):
                return

    def start(self) -> QueueSampler:
        self._thread = threading.Thread(target=self._run, name="jobqueue-sampler", daemon=True)
        self._thread.start()
        return self

    def close(self, timeout: float = 1.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def __enter__(self) -> QueueSampler:
        return self if self._thread is not None else self.start()

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def start_sampler(settings: Settings, engine: Engine, metrics: Metrics) -> QueueSampler | None:
    """The configured sampler, started; None when ``queue_sample_interval`` is 0 (off)."""
    interval = settings.observability.queue_sample_interval
    if interval <= 0:
        return None
    queues = [settings.worker.queue_of(p) for p in settings.worker.priorities]
    return QueueSampler(engine, metrics, queues, interval).start()


def redis_ready(engine: Engine) -> Callable[[], bool]:
    """The ``/readyz`` check: True when Redis answers a PING."""

    def ready() -> bool:
        try:
            engine.ping()
        except (*RedisError, JobQueueError):
            return False
        return True

    return ready
