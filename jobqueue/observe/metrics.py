"""Prometheus metrics, created per process with an injectable registry.

Nothing happens at import time: :class:`Metrics` registers its series when built, so tests
build their own with a fresh ``CollectorRegistry``. The ``queue`` label takes configured
queue names only, which bounds its cardinality.

Names follow Prometheus conventions: every jobqueue series is ``jobqueue_<design name>``
(shared/design.md's names are the suffixes; counters end in ``_total``), beside the
standard ``process_*`` and ``python_*`` series of prometheus-client's own collectors, which
keep their usual names so that stock dashboards work. States are label values named as
``admin stats`` names them (docs/admin.md, "Vocabulary").

Jobs are run by worker processes under a supervisor. Their series (consumed, completed,
durations, in flight, breaker...) go through prometheus-client's multiprocess mode: each
worker process writes its values to a file in a shared folder, and the supervisor, which
serves ``/metrics``, collects them all (``processes_dir``), counting every process that ever
ran, dead or alive. The supervisor's own registry then exposes only the series it updates
itself (queue depths, recoveries, jobs produced under ``--role=all``, build info, its own
process), so no series appears twice. Gauges say how the processes' values combine
(``multiprocess_mode``).
"""

from __future__ import annotations

import platform
from collections.abc import Iterable
from typing import Literal

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Histogram,
    Info,
    PlatformCollector,
    ProcessCollector,
)
from prometheus_client.multiprocess import MultiProcessCollector

DURATION_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)
NAMESPACE = "jobqueue"
BREAKER_STATES = ("closed", "half-open", "open")
# The states a queue's jobs wait or run in (completed is a capped history, not a depth).
DEPTH_STATES = ("pending", "scheduled", "reserved", "running", "dead_letter")
GaugeMode = Literal["all", "livesum", "mostrecent"]  # how a gauge's values combine over processes


def _version() -> str:
    from jobqueue import __version__  # noqa: PLC0415 - package metadata, read when built

    return __version__


def _counter(r: CollectorRegistry, name: str, doc: str, *labels: str) -> Counter:
    return Counter(name, doc, labels, namespace=NAMESPACE, registry=r)


def _gauge(
    r: CollectorRegistry, name: str, doc: str, *labels: str, mode: GaugeMode = "all"
) -> Gauge:
    return Gauge(name, doc, labels, namespace=NAMESPACE, registry=r, multiprocess_mode=mode)


class Metrics:
    """Every series in shared/design.md (prefixed), on one registry."""

    def __init__(
        self, registry: CollectorRegistry | None = None, processes_dir: str | None = None
    ) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        ProcessCollector(registry=r)
        PlatformCollector(registry=r)
        GCCollector(registry=r)
        self.build_info = Info(
            "build", "Version of jobqueue and Python.", namespace=NAMESPACE, registry=r
        )
        self.build_info.info({"version": _version(), "python": platform.python_version()})
        self.jobs_produced = _counter(r, "jobs_produced", "Jobs enqueued.", "queue")
        # Every process that samples the queues reads the same Redis: the newest reading is
        # the figure (several serving processes: jobqueue.server.serve).
        self.queue_length = _gauge(
            r, "queue_length", "Pending jobs per queue.", "queue", mode="mostrecent"
        )
        self.queue_depth = _gauge(
            r,
            "queue_depth",
            "Jobs per queue and state (pending, scheduled, reserved, running, dead_letter).",
            "queue",
            "state",
            mode="mostrecent",
        )
        self.queue_oldest_pending_age = _gauge(
            r,
            "queue_oldest_pending_age_seconds",
            "Age of the job next in line (from its creation_time); 0 when none is pending.",
            "queue",
            mode="mostrecent",
        )
        self.reaper_recovered = _counter(
            r, "reaper_recovered", "Jobs recovered from dead workers.", "queue"
        )
        if processes_dir is not None:
            MultiProcessCollector(r, path=processes_dir)  # type: ignore[no-untyped-call]
            r = CollectorRegistry()  # worker processes report these; never exposed from here
        self._worker_series(r)

    def _worker_series(self, r: CollectorRegistry) -> None:
        """The series worker processes update (through files in multiprocess mode)."""
        self.jobs_consumed = _counter(r, "jobs_consumed", "Jobs claimed.", "queue")
        self.claims_rate_limited = _counter(
            r,
            "claims_rate_limited",
            "Claims that found the queue's rate limit (worker.rate_limits) out of tokens.",
            "queue",
        )
        self.jobs_completed = _counter(r, "jobs_completed", "Jobs acked.", "queue")
        self.jobs_failed = _counter(r, "jobs_failed", "Handler failures.", "queue")
        self.jobs_retried = _counter(r, "jobs_retried", "Jobs scheduled again.", "queue")
        self.jobs_dead_letter = _counter(
            r, "jobs_dead_letter", "Jobs sent to the dead-letter queue.", "queue"
        )
        self.job_processing_duration = Histogram(
            "job_processing_duration_seconds",
            "Handler run time.",
            ["queue"],
            buckets=DURATION_BUCKETS,
            namespace=NAMESPACE,
            registry=r,
        )
        self.worker_active = _gauge(r, "worker_active", "Worker slots running.", mode="livesum")
        # An Enum in spirit (one series per state), as a gauge because prometheus-client's
        # Enum has no multiprocess mode: each worker process sets 1 on its state and 0 on
        # the others, and the sum over live processes counts the processes in each state.
        self.circuit_breaker_state = _gauge(
            r,
            "circuit_breaker_state",
            "Worker processes whose circuit breaker is in this state.",
            "state",
            mode="livesum",
        )
        for state in BREAKER_STATES:
            self.circuit_breaker_state.labels(state)
        self.circuit_breaker_trips = _counter(
            r, "circuit_breaker_trips", "Times the breaker opened."
        )
        self.jobs_inflight = _gauge(r, "jobs_inflight", "Jobs being handled now.", mode="livesum")

    def shared_registry(self, processes_dir: str) -> CollectorRegistry:
        """What to expose when several processes serve one port and share ``processes_dir``
        (prometheus-client's multiprocess mode): every process's series read from their
        files, counters summed, and the build. Not the ``process_*`` series: a scrape
        reaches one process at random, whose own figures would jump from scrape to scrape."""
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=processes_dir)  # type: ignore[no-untyped-call]
        registry.register(self.build_info)
        return registry

    def set_breaker_state(self, state: str) -> None:
        """This process's breaker is now in ``state`` (closed, half-open or open)."""
        for name in BREAKER_STATES:
            self.circuit_breaker_state.labels(name).set(1 if name == state else 0)

    def declare_queues(self, queues: Iterable[str]) -> None:
        """Create every per-queue series at zero, so ``increase()`` sees the first event and
        dashboards show the queues before anything happened to them."""
        labelled = (
            self.jobs_produced,
            self.jobs_consumed,
            self.claims_rate_limited,
            self.jobs_completed,
            self.jobs_failed,
            self.jobs_retried,
            self.jobs_dead_letter,
            self.job_processing_duration,
            self.queue_length,
            self.queue_oldest_pending_age,
            self.reaper_recovered,
        )
        for queue in queues:
            for metric in labelled:
                metric.labels(queue)
            for state in DEPTH_STATES:
                self.queue_depth.labels(queue, state)
