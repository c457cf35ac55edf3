"""``admin bench``: enqueue N synthetic jobs at a rate, wait for them, report the numbers.

Jobs go in through ``Engine.enqueue_many`` in batches of up to 200, from their own thread,
paced locally against the monotonic clock (the shared token bucket belongs to producers; a
bench must not eat their budget). Each job is stamped (``creation_time``) as its batch is
built, just before it is sent. Completion is detected by polling the queue's ``completed``
counter (``Inspector.stats``); when it grows, the new entries of the completed list are
read (``Inspector.peek_completed``) and the bench's own jobs, tagged with a run id, are
timed: latency = the wall-clock time the completion was first observed minus the job's
``creation_time``. Both are this process's wall clock, so no clock skew enters. The
resolution is one poll period, measured and reported as ``resolution_ms``: a latency is
late by at most that much. A job dead-lettered by the handler is counted, not timed.

A run that times out or is interrupted (Ctrl-C) takes its jobs that no worker has claimed
yet back out of the queue (``Engine.withdraw``, by the run id each job carries), so a bench
never leaves synthetic work behind for the real workers; claimed ones finish as usual. A run
whose jobs were dead-lettered is reported as a failure.

The bench measures whatever handler the workers run: use ``worker.handler.type: noop`` (or
``demo``, which is instant for these zero-byte files) to measure the queue itself.
"""

from __future__ import annotations

import json
import math
import statistics
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from jobqueue.admin.commands import queue_labels, session
from jobqueue.config import Settings
from jobqueue.engine import Engine, Inspector
from jobqueue.errors import UsageError
from jobqueue.job import Job, new_job

MAX_BATCH = 200
PERCENTILES = (50, 95, 99)


@dataclass(frozen=True, slots=True)
class BenchOptions:
    count: int
    rate: float = 0.0  # jobs per second; 0 = as fast as Redis takes them
    priority: str | None = None  # default: producer.default_priority
    payload_size: int = 0  # pad each job's JSON to about this many bytes; 0 = natural size
    timeout: float = 60.0
    poll_interval: float = 0.002


@dataclass(slots=True)
class BenchReport:
    run_id: str
    priority: str
    queue: str
    count: int
    rate: float
    payload_bytes: int
    enqueued: int = 0
    completed: int = 0
    dead: int = 0
    enqueue_seconds: float = 0.0
    elapsed_seconds: float = 0.0
    resolution_ms: float = 0.0
    latencies: list[float] = field(default_factory=list)  # seconds, one per observed job
    live_workers: int = 0
    timed_out: bool = False
    interrupted: bool = False  # Ctrl-C, or BenchControl.cancel
    withdrawn: int = 0  # unclaimed jobs taken back out of the queue after a timeout or Ctrl-C

    @property
    def throughput(self) -> float:
        """Completed jobs per second, first enqueue to last observed completion."""
        return self.completed / self.elapsed_seconds if self.elapsed_seconds > 0 else 0.0

    def problem(self) -> str | None:
        """Why this run is not a success (the CLI exits 1 with it), or None."""
        took_back = f"; {self.withdrawn} unclaimed jobs taken back out of the queue"
        done = f"{self.completed} of {self.count} jobs completed"
        if self.interrupted:
            return f"bench interrupted: {done}{took_back}"
        if self.timed_out:
            return f"bench timed out: {done}{took_back}"
        if self.dead:
            return (
                f"bench failed: {self.dead} of {self.count} jobs were dead-lettered, {done} "
                "(see jobqueue admin peek --queue dlq)"
            )
        return None

    def percentiles_ms(self) -> dict[str, float | None]:
        ordered = sorted(self.latencies)
        result: dict[str, float | None] = {}
        for p in PERCENTILES:
            result[f"p{p}"] = _ms(nearest_rank(ordered, p)) if ordered else None
        result["max"] = _ms(ordered[-1]) if ordered else None
        result["mean"] = _ms(statistics.fmean(ordered)) if ordered else None
        return result

    def as_json(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "priority": self.priority,
            "queue": self.queue,
            "count": self.count,
            "rate": self.rate,
            "payload_bytes": self.payload_bytes,
            "enqueued": self.enqueued,
            "completed": self.completed,
            "dead": self.dead,
            "timed_out": self.timed_out,
            "interrupted": self.interrupted,
            "withdrawn": self.withdrawn,
            "live_workers": self.live_workers,
            "enqueue_seconds": round(self.enqueue_seconds, 6),
            "elapsed_seconds": round(self.elapsed_seconds, 6),
            "throughput_per_second": round(self.throughput, 1),
            "latency_ms": self.percentiles_ms(),
            "latency_samples": len(self.latencies),
            "resolution_ms": round(self.resolution_ms, 3),
        }


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 3)


def nearest_rank(ordered: list[float], percentile: float) -> float:
    """The smallest value with at least ``percentile`` % of the samples at or below it."""
    rank = max(1, math.ceil(percentile / 100 * len(ordered)))
    return ordered[rank - 1]


def _creation_epoch(value: str) -> float | None:
    try:
        return datetime.fromisoformat(value).timestamp()
    except ValueError:
        return None


class JobFactory:
    """Synthetic jobs for one run, stamped at the moment they are built."""

    def __init__(self, run_id: str, priority: str, payload_size: int) -> None:
        self.run_id = run_id
        self.marker = f'"bench_run":"{run_id}"'  # as it appears in each job's JSON
        self.priority = priority
        self.made = 0
        base = len(self._job("").to_json())
        self.pad = "x" * max(0, payload_size - base)

    def _job(self, pad: str) -> Job:
        return new_job(
            f"bench/{self.run_id}/{self.made}", self.priority, bench_run=self.run_id, bench_pad=pad
        )

    def job_bytes(self) -> int:
        """The size of one job's JSON (ids and times have fixed widths)."""
        return len(self._job(self.pad).to_json())

    def batch(self, n: int) -> list[Job]:
        jobs = []
        for _ in range(n):
            jobs.append(self._job(self.pad))
            self.made += 1
        return jobs


class CompletionWatcher:
    """Finds this run's completed jobs by polling the completed counter and list.

    The completed list is newest-first. Each sweep reads from the top down to the newest
    entry the previous sweep saw (the anchor), widening the read until it reaches it, so
    acks that land between reading the counter and reading the list are never skipped.
    Only entries pushed past ``completed_max`` (LTRIM) can escape; the counters still
    account for them.
    """

    def __init__(self, inspector: Inspector, label: str, queue: str, run_id: str, cap: int):
        self.inspector = inspector
        self.labels = {label: queue}
        self.label, self.queue, self.cap = label, queue, cap
        self.marker = run_id.encode()
        self.run_id = run_id
        self.seen: dict[str, float] = {}  # job id -> latency in seconds
        self.last_seen_at = 0.0
        self.polls = 0
        self.base_completed, self.base_dead = self._counters()
        self.last_completed = self.base_completed
        self.completed_delta = self.dead_delta = 0
        top = inspector.peek_completed(queue, 1) if cap > 0 else []
        self.anchor: bytes | None = top[0].raw if top else None

    def _counters(self) -> tuple[int, int]:
        counters = self.inspector.stats(self.labels).queues[self.label].counters
        return counters.get("completed", 0), counters.get("dead", 0)

    def poll(self) -> None:
        self.polls += 1
        completed, dead = self._counters()
        self.completed_delta = completed - self.base_completed
        self.dead_delta = dead - self.base_dead
        if completed > self.last_completed and self.cap > 0:
            self.sweep(completed - self.last_completed + 64)
        self.last_completed = completed

    def _read_to_anchor(self, n: int) -> list[bytes]:
        """The entries newer than the anchor (all of them, up to ``cap``)."""
        while True:
            n = min(self.cap, n)
            raws = [entry.raw for entry in self.inspector.peek_completed(self.queue, n)]
            if self.anchor in raws:
                return raws[: raws.index(self.anchor)]
            if len(raws) < n or n >= self.cap:
                return raws  # the whole list is new, or the anchor was trimmed away
            n *= 2

    def sweep(self, n: int) -> None:
        raws = self._read_to_anchor(n)
        if not raws:
            return
        now = time.time()
        self.anchor = raws[0]
        for raw in raws:
            if self.marker in raw:
                self._see(raw, now)

    def _see(self, raw: bytes, now: float) -> None:
        try:
            doc = json.loads(raw)
        except ValueError:
            return
        if doc.get("bench_run") != self.run_id or doc.get("id") in self.seen:
            return
        created = _creation_epoch(str(doc.get("creation_time", "")))
        if created is not None:
            self.seen[str(doc["id"])] = max(0.0, now - created)
            self.last_seen_at = now

    def finished(self, count: int) -> bool:
        """All observed, or the counters account for every job."""
        return len(self.seen) >= count or self.completed_delta + self.dead_delta >= count


@dataclass
class BenchControl:
    """How a screen follows and stops a run from another thread: ``done`` and ``enqueued``
    are updated at every poll (plain assignments, read whenever the screen redraws);
    setting ``cancel`` ends the run as Ctrl-C does, its unclaimed jobs taken back."""

    cancel: threading.Event = field(default_factory=threading.Event)
    done: int = 0
    enqueued: int = 0


def bench(
    engine: Engine,
    settings: Settings,
    options: BenchOptions,
    sleep: Callable[[float], None] = time.sleep,
    control: BenchControl | None = None,
) -> BenchReport:
    """Run one bench against an open engine; see the module docstring."""
    priority = options.priority or settings.producer.default_priority
    queue = _queue_of(settings, priority)
    run_id = uuid.uuid4().hex[:12]
    factory = JobFactory(run_id, priority, options.payload_size)
    size = factory.job_bytes()
    _check_size(size, settings.worker.max_payload_bytes)
    inspector = Inspector(engine)
    report = BenchReport(run_id, priority, queue, options.count, options.rate, size)
    report.live_workers = inspector.stats({priority: queue}).workers
    watcher = CompletionWatcher(
        inspector, priority, queue, run_id, max(settings.worker.completed_max, 0)
    )
    enqueuer = Enqueuer(engine, factory, queue, options)
    _drive(enqueuer, watcher, options, report, sleep, control or BenchControl())
    if report.timed_out or report.interrupted:  # its jobs must not stay behind in a real queue
        report.withdrawn = engine.withdraw(queue, factory.marker)
    return report


class Enqueuer(threading.Thread):
    """Sends the jobs at the requested pace on its own thread, so polling never waits on it."""

    def __init__(
        self, engine: Engine, factory: JobFactory, queue: str, options: BenchOptions
    ) -> None:
        super().__init__(name="jobqueue-bench-enqueue", daemon=True)
        self.engine, self.factory, self.queue = engine, factory, queue
        self.count, self.rate = options.count, options.rate
        self.stop = threading.Event()
        self.enqueued = 0
        self.seconds = 0.0
        self.error: Exception | None = None

    def _due(self, elapsed: float) -> int:
        if self.rate <= 0:
            return self.count
        return min(self.count, int(elapsed * self.rate) + 1)

    def run(self) -> None:
        start = time.monotonic()
        try:
            while self.factory.made < self.count and not self.stop.is_set():
                elapsed = time.monotonic() - start
                n = self._due(elapsed) - self.factory.made
                if n <= 0:
                    self.stop.wait(min(0.005, (self.factory.made + 1) / self.rate - elapsed))
                    continue
                items = [(job, self.queue) for job in self.factory.batch(min(n, MAX_BATCH))]
                self.enqueued += sum(self.engine.enqueue_many(items))
        except Exception as exc:  # re-raised on the caller's thread
            self.error = exc
        finally:
            self.seconds = time.monotonic() - start


def _drive(
    enqueuer: Enqueuer,
    watcher: CompletionWatcher,
    options: BenchOptions,
    report: BenchReport,
    sleep: Callable[[float], None],
    control: BenchControl,
) -> None:
    start_wall, start = time.time(), time.monotonic()
    enqueuer.start()
    try:
        while True:
            if control.cancel.is_set():
                report.interrupted = True
                break
            sending = enqueuer.is_alive()
            watcher.poll()
            control.done = len(watcher.seen) or watcher.completed_delta
            control.enqueued = enqueuer.enqueued
            if not sending and watcher.finished(enqueuer.enqueued):
                break
            if time.monotonic() - start >= options.timeout:
                report.timed_out = True
                break
            sleep(options.poll_interval)
    except KeyboardInterrupt:  # Ctrl-C: report what was done, then take the rest back
        report.interrupted = True
    finally:
        enqueuer.stop.set()
        enqueuer.join()
    if enqueuer.error is not None:
        raise enqueuer.error
    report.resolution_ms = (time.monotonic() - start) / max(watcher.polls, 1) * 1000
    report.enqueued, report.enqueue_seconds = enqueuer.enqueued, enqueuer.seconds
    report.latencies = list(watcher.seen.values())
    # Without a completed list to read (completed_max 0), trust the counter.
    report.completed = len(watcher.seen) or min(watcher.completed_delta, enqueuer.enqueued)
    report.dead = watcher.dead_delta
    end = watcher.last_seen_at if watcher.seen else time.time()
    report.elapsed_seconds = max(0.0, end - start_wall)


def _queue_of(settings: Settings, priority: str) -> str:
    labels = queue_labels(settings)
    if priority not in labels:
        raise UsageError(f"--priority {priority!r} is not one of: {', '.join(labels)}")
    return labels[priority]


def _check_size(size: int, limit: int) -> None:
    if size > limit:
        raise UsageError(f"--payload-size makes jobs of {size} bytes > max_payload_bytes {limit}")


def run_bench(
    settings: Settings, options: BenchOptions, control: BenchControl | None = None
) -> BenchReport:
    if options.count < 1:
        raise UsageError("--count must be at least 1")
    if options.rate < 0:
        raise UsageError("--rate must not be negative")
    _queue_of(settings, options.priority or settings.producer.default_priority)
    with session(settings) as engine:
        return bench(engine, settings, options, control=control)
