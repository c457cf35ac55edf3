"""Process-level observability glue: the ``queue_length{queue}`` sampler and the readiness
check that ``/readyz`` runs. Roles may import the engine; ``observe`` may not, so this lives
here.

Start one sampler per process (the role runner does), whatever roles the process runs: every
process exposes the same gauge, and one Redis round trip per queue per interval is the cost.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import Any

from jobqueue.config import Settings
from jobqueue.engine import Engine, RedisError
from jobqueue.errors import JobQueueError
from jobqueue.observe.logs import get_logger
from jobqueue.observe.metrics import Metrics

log: Any = get_logger("jobqueue.sampler")


class QueueSampler:
    """Sets ``queue_length{queue}`` to each queue's pending length every ``interval``."""

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
        """One pass: read every queue's length and publish it; raises RedisError."""
        lengths = {queue: self.engine.pending_length(queue) for queue in self.queues}
        for queue, length in lengths.items():
            self.metrics.queue_length.labels(queue=queue).set(length)
        return lengths

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
