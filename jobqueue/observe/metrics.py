"""Prometheus metrics, created per process with an injectable registry.

Nothing happens at import time: :class:`Metrics` registers its series when built, so tests
build their own with a fresh ``CollectorRegistry``. The ``queue`` label takes configured
queue names only, which bounds its cardinality.

Jobs are run by worker processes under a supervisor. Their series (consumed, completed,
durations, in flight, breaker...) go through prometheus-client's multiprocess mode: each
worker process writes its values to a file in a shared folder, and the supervisor, which
serves ``/metrics``, collects them all (``processes_dir``), counting every process that ever
ran, dead or alive. The supervisor's own registry then exposes only the series it updates
itself (queue lengths, recoveries, jobs produced under ``--role=all``), so no series appears
twice. Gauges say how the processes' values combine (``multiprocess_mode``).
"""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.multiprocess import MultiProcessCollector

DURATION_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)


class Metrics:
    """Every series in shared/design.md, on one registry."""

    def __init__(
        self, registry: CollectorRegistry | None = None, processes_dir: str | None = None
    ) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.jobs_produced = Counter("jobs_produced", "Jobs enqueued.", ["queue"], registry=r)
        self.queue_length = Gauge("queue_length", "Pending jobs per queue.", ["queue"], registry=r)
        self.reaper_recovered = Counter(
            "reaper_recovered", "Jobs recovered from dead workers.", ["queue"], registry=r
        )
        if processes_dir is not None:
            MultiProcessCollector(r, path=processes_dir)  # type: ignore[no-untyped-call]
            r = CollectorRegistry()  # worker processes report these; never exposed from here
        self.jobs_consumed = Counter("jobs_consumed", "Jobs claimed.", ["queue"], registry=r)
        self.jobs_completed = Counter("jobs_completed", "Jobs acked.", ["queue"], registry=r)
        self.jobs_failed = Counter("jobs_failed", "Handler failures.", ["queue"], registry=r)
        self.jobs_retried = Counter("jobs_retried", "Jobs scheduled again.", ["queue"], registry=r)
        self.jobs_dead_letter = Counter(
            "jobs_dead_letter", "Jobs sent to the dead-letter queue.", ["queue"], registry=r
        )
        self.job_processing_duration = Histogram(
            "job_processing_duration_seconds",
            "Handler run time.",
            ["queue"],
            buckets=DURATION_BUCKETS,
            registry=r,
        )
        self.worker_active = Gauge(
            "worker_active", "Worker slots running.", registry=r, multiprocess_mode="livesum"
        )
        self.circuit_breaker_state = Gauge(
            "circuit_breaker_state",
            "0 closed, 1 half-open, 2 open (the most open of the worker processes).",
            registry=r,
            multiprocess_mode="livemax",
        )
        self.circuit_breaker_trips = Counter(
            "circuit_breaker_trips", "Times the breaker opened.", registry=r
        )
        self.jobs_inflight = Gauge(
            "jobs_inflight", "Jobs being handled now.", registry=r, multiprocess_mode="livesum"
        )

    def declare_queues(self, queues: Iterable[str]) -> None:
        """Create every per-queue series at zero, so ``increase()`` sees the first event and
        dashboards show the queues before anything happened to them."""
        labelled = (
            self.jobs_produced,
            self.jobs_consumed,
            self.jobs_completed,
            self.jobs_failed,
            self.jobs_retried,
            self.jobs_dead_letter,
            self.job_processing_duration,
            self.queue_length,
            self.reaper_recovered,
        )
        for queue in queues:
            for metric in labelled:
                metric.labels(queue)
