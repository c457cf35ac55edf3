"""The producer role: the files under ``producer.scan_dir`` become jobs, safely, at a rate.

One pass is: walk (walk.py, streaming) -> a job per file, its priority from its extension and
its idempotency key from (absolute path, size, mtime) -> a batch of up to ``batch_size`` jobs
-> wait while a target queue is full (backpressure) -> one pipelined ``enqueue_many`` -> pay
the shared token bucket for the jobs that went in. ``watch_interval`` > 0 repeats the pass.

Choices worth knowing:

* Re-runs are idempotent through the engine: ``enqueue`` refuses a job whose key is live
  (set when enqueued) or done (set when acked), each for ``producer.dedupe_ttl``. So an
  unchanged file is not enqueued again for ``dedupe_ttl`` after its last enqueue or
  completion; after that it is enqueued once more. A changed file (size or mtime) has a new
  key and goes in at once. A dead-lettered file keeps its live key until the TTL runs out,
  so rescans do not feed a poison file back; ``admin requeue-dlq`` or ``admin enqueue`` do.
* Tokens are taken *after* a batch, for the jobs actually enqueued: a rescan of unchanged
  files costs no tokens, so a watch loop over a big tree is not throttled into uselessness.
  Batches are kept to ~50 ms of the rate (and never above ``burst``), so the flow is smooth
  and a producer runs ahead of the limit by at most one such slice.
* Backpressure: before a batch, every target queue must have room for it below
  ``max_pending``; batches are capped at ``max_pending`` so that room can always come.
* A stop (SIGTERM/SIGINT set the event) is honoured between batches and during any wait;
  the batch being sent completes, a batch not yet sent is dropped (its files are picked up
  by the next run, since their keys were never set). Nothing is half-enqueued.
* ``admin enqueue`` is an operator's explicit request: it gives each job a fresh, unique
  idempotency key (so even an unchanged, already-processed file goes in, while the worker
  still runs each such job's handler at most once), honours the shared rate limit, and is
  not held back by ``max_pending``.
"""

from __future__ import annotations

import math
import os
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

from jobqueue.config import ProducerConfig, Settings
from jobqueue.engine import Engine, EnqueueRefused, RedisError
from jobqueue.errors import OperationalError, UsageError
from jobqueue.job import Job, PayloadError, check_delay, file_idempotency_key, new_job
from jobqueue.observe.logs import get_logger
from jobqueue.observe.metrics import Metrics
from jobqueue.observe.tracing import Tracer
from jobqueue.roles.progress import Reporter, count_fields, open_reporter, quiet_reporter
from jobqueue.roles.walk import FoundFile, Globs, Walker, walk_paths

__all__ = ["Producer", "ProducerSummary", "check_enqueue_request", "enqueue_paths", "run_producer"]

log: Any = get_logger("jobqueue.producer")

TOKEN_SLICE = 0.05  # seconds of the rate per batch when rate limited
Batch = list[tuple[Job, str]]
ReporterFactory = Callable[[str], AbstractContextManager[Reporter]]


@dataclass(slots=True)
class ProducerSummary:
    """What a pass (or a whole run: the sum of its passes) did.

    ``seen``: files the walk accepted. Each ends up ``enqueued``, ``skipped_duplicate`` (its
    key is live or done) or ``skipped_error`` (name not UTF-8, job refused), except the few
    in a batch dropped by a stop. ``skipped_error`` also counts files and folders the walk
    could not read, which are not in ``seen``.
    """

    seen: int = 0
    enqueued: int = 0
    skipped_duplicate: int = 0
    skipped_error: int = 0
    elapsed: float = 0.0

    def add(self, other: ProducerSummary) -> None:
        self.seen += other.seen
        self.enqueued += other.enqueued
        self.skipped_duplicate += other.skipped_duplicate
        self.skipped_error += other.skipped_error


@dataclass(frozen=True, slots=True)
class Mode:
    """What differs between the producer role and an operator's ``admin enqueue``."""

    file_keys: bool = True
    backpressure: bool = True
    priority: str | None = None
    delay: float = 0.0


class PriorityRule:
    """``high_priority_exts`` (case-insensitive, dot optional) go to the ``high`` priority,
    or to the first of ``worker.priorities`` when none is named ``high``; the rest go to
    ``default_priority``."""

    def __init__(self, settings: Settings) -> None:
        priorities = settings.worker.priorities
        self.high = "high" if "high" in priorities else priorities[0]
        self.default = settings.producer.default_priority
        self.exts = tuple(
            ext.lower() if ext.startswith(".") else f".{ext.lower()}"
            for ext in settings.producer.high_priority_exts
        )

    def __call__(self, path: str) -> str:
        return self.high if os.path.basename(path).lower().endswith(self.exts) else self.default


def bucket_size(cfg: ProducerConfig) -> int:
    """``burst``, or one second of the rate when it is 0."""
    return cfg.burst or max(1, math.ceil(cfg.rate_limit_per_sec))


def batch_step(cfg: ProducerConfig, backpressure: bool) -> int:
    """Jobs per batch: small enough to pace smoothly and to fit the bucket and the queue."""
    step = cfg.batch_size
    if cfg.rate_limit_per_sec > 0:
        pace = max(1, math.ceil(cfg.rate_limit_per_sec * TOKEN_SLICE))
        step = min(step, bucket_size(cfg), pace)
    if backpressure and cfg.max_pending > 0:
        step = min(step, cfg.max_pending)
    return max(1, step)


def _is_utf8(path: str) -> bool:
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


class Batcher:
    """Files in, jobs out: builds each job, waits for room, sends a batch, pays tokens."""

    def __init__(
        self,
        settings: Settings,
        engine: Engine,
        stop: threading.Event,
        mode: Mode,
        metrics: Metrics | None = None,
    ) -> None:
        cfg = settings.producer
        self.engine = engine
        self.stop = stop
        self.mode = mode
        self.metrics = metrics
        self.tracer = Tracer(settings.observability.tracing)
        self.priority_of = PriorityRule(settings)
        self.queue_of = settings.worker.queue_of
        self.rate = cfg.rate_limit_per_sec
        self.burst = bucket_size(cfg)
        self.max_pending = cfg.max_pending if mode.backpressure else 0
        self.poll = cfg.backpressure_poll
        self.step = batch_step(cfg, mode.backpressure)
        self.paused = threading.Event()
        self.pauses = 0
        self.counts = ProducerSummary()
        self._batch: Batch = []

    def begin(self) -> ProducerSummary:
        """Start counting a new pass."""
        self.counts = ProducerSummary()
        self._batch = []
        return self.counts

    def add(self, found: FoundFile) -> bool:
        """Take one file; True when it completed a batch, which was then sent."""
        self.counts.seen += 1
        job = self._job(found)
        if job is None:
            self.counts.skipped_error += 1
            return False
        self._batch.append((job, self.queue_of(job.priority)))
        if len(self._batch) < self.step:
            return False
        self.flush()
        return True

    def flush(self) -> bool:
        """Send what is in hand; False when a stop came first (an unsent batch is dropped)."""
        batch, self._batch = self._batch, []
        if not batch:
            return True
        if not self._wait_for_room(batch):
            return False
        return self._pay(self._send(batch))

    def _job(self, found: FoundFile) -> Job | None:
        if not _is_utf8(found.path):
            log.warning(
                "file name is not valid UTF-8; a JSON job cannot carry it; skipped",
                path=ascii(found.path),
            )
            return None
        priority = self.mode.priority or self.priority_of(found.path)
        if self.mode.file_keys:
            key = file_idempotency_key(found.path, found.size, found.mtime_ns)
        else:
            key = f"admin-{uuid.uuid4().hex}"
        return new_job(found.path, priority, found.size, key)

    def _send(self, batch: Batch) -> int:
        """One pipelined round trip; count each job's fate; return how many went in."""
        try:
            flags: list[bool | None] = list(self.engine.enqueue_many(batch, self.mode.delay))
        except PayloadError:  # one job too large: send them one by one to find it
            flags = [self._send_one(job, queue) for job, queue in batch]
        except EnqueueRefused as exc:  # Redis kept some (maxmemory): count what it kept
            log.warning(
                "Redis refused jobs of a batch", refused=exc.accepted.count(None), error=str(exc)
            )
            flags = exc.accepted
        enqueued: Counter[str] = Counter()
        for (job, queue), flag in zip(batch, flags, strict=True):
            if flag:
                enqueued[queue] += 1
                self._trace_enqueue(job, queue)
            elif flag is None:
                self.counts.skipped_error += 1
            else:
                self.counts.skipped_duplicate += 1
        for queue, n in enqueued.items():
            if self.metrics is not None:
                self.metrics.jobs_produced.labels(queue=queue).inc(n)
        total = sum(enqueued.values())
        self.counts.enqueued += total
        return total

    def _trace_enqueue(self, job: Job, queue: str) -> None:
        if self.tracer.enabled:
            with self.tracer.span(
                "enqueue",
                job.trace_id,
                job.span_id,
                **{"jobqueue.job_id": job.id, "jobqueue.queue": queue},
            ):
                pass

    def _send_one(self, job: Job, queue: str) -> bool | None:
        try:
            return self.engine.enqueue(job, queue, self.mode.delay)
        except PayloadError as exc:
            log.warning("job refused; skipped", path=job.filepath, error=str(exc))
            return None

    def _full_queue(self, wanted: Counter[str]) -> tuple[str, int] | None:
        for queue, n in wanted.items():
            pending = self.engine.pending_length(queue)
            if pending + n > self.max_pending:
                return queue, pending
        return None

    def _wait_for_room(self, batch: Batch) -> bool:
        """Backpressure: hold the batch while a target queue has no room for it."""
        if self.max_pending <= 0:
            return True
        wanted = Counter(queue for _, queue in batch)
        full = self._full_queue(wanted)
        if full is None:
            return True
        self.pauses += 1
        self.paused.set()
        log.warning(
            "backpressure: queue full; producer paused",
            queue=full[0],
            pending=full[1],
            max_pending=self.max_pending,
        )
        started = time.monotonic()
        try:
            while full is not None:
                if self.stop.wait(self.poll):
                    return False
                full = self._full_queue(wanted)
        finally:
            self.paused.clear()
        log.info(
            "backpressure: room again; producer resumed",
            paused_s=round(time.monotonic() - started, 3),
        )
        return True

    def _pay(self, tokens: int) -> bool:
        """Take tokens for jobs just enqueued, sleeping exactly the wait the bucket names."""
        if self.rate <= 0 or tokens == 0:
            return True
        while True:
            wait = self.engine.take_tokens(self.rate, self.burst, tokens)
            if wait <= 0:
                return True
            if self.stop.wait(wait):
                return False


class Producer:
    """Runs passes over the scan directory (or over chosen paths) through one Batcher."""

    def __init__(
        self,
        settings: Settings,
        engine: Engine,
        stop: threading.Event,
        metrics: Metrics | None = None,
        mode: Mode | None = None,
        reporter: ReporterFactory = open_reporter,
    ) -> None:
        self.settings = settings
        self.stop = stop
        self.batcher = Batcher(settings, engine, stop, mode or Mode(), metrics)
        self.summary = ProducerSummary()
        self._open_reporter = reporter

    @property
    def paused(self) -> threading.Event:
        """Set while backpressure holds the producer (for tests and dashboards)."""
        return self.batcher.paused

    def run(self) -> ProducerSummary:
        """One pass, or (``watch_interval`` > 0) passes until stopped; the run's totals."""
        interval = self.settings.producer.watch_interval
        started = time.monotonic()
        try:
            if interval <= 0:
                self.scan()
                return self.summary
            self._watched_scan()
            while not self.stop.wait(interval):
                self._watched_scan()
            log.info("producer stopped", **count_fields(self.summary, time.monotonic() - started))
            return self.summary
        finally:
            self.summary.elapsed = time.monotonic() - started

    def _watched_scan(self) -> None:
        """In watch mode a failed pass is logged and retried at the next interval."""
        try:
            self.scan()
        except OperationalError as exc:
            log.error("producer pass failed; retrying at the next interval", error=str(exc))

    def scan(self) -> ProducerSummary:
        """One pass over ``producer.scan_dir``."""
        cfg = self.settings.producer
        if not os.path.isdir(cfg.scan_dir):
            raise OperationalError(f"producer.scan_dir {cfg.scan_dir!r} is not a directory")
        globs = Globs(cfg.include_globs, cfg.exclude_globs)
        walker = Walker(cfg.scan_dir, globs, cfg.follow_symlinks, self.count_error)
        return self.feed(walker, "producer")

    def count_error(self, _path: str, _exc: OSError) -> None:
        self.batcher.counts.skipped_error += 1

    def feed(self, files: Iterable[FoundFile], label: str) -> ProducerSummary:
        """Enqueue ``files`` as one pass; Redis failing mid-pass is an OperationalError."""
        counts = self.batcher.begin()
        started = time.monotonic()
        try:
            with self._open_reporter(label) as reporter:
                self._feed(files, reporter)
                counts.elapsed = time.monotonic() - started
                reporter.finish(counts, counts.elapsed)
        except RedisError as exc:
            raise OperationalError(
                f"{label}: Redis failed mid-pass ({exc}); {counts.enqueued} jobs were enqueued; "
                "run again: files already queued are skipped"
            ) from exc
        finally:
            counts.elapsed = time.monotonic() - started
            self.summary.add(counts)
        return counts

    def _feed(self, files: Iterable[FoundFile], reporter: Reporter) -> None:
        for found in files:
            if self.batcher.add(found):
                reporter.update(self.batcher.counts)
            if self.stop.is_set():
                return
        self.batcher.flush()


def run_producer(
    settings: Settings,
    engine: Engine,
    stop: threading.Event,
    metrics: Metrics | None = None,
) -> ProducerSummary:
    """The ``--role=producer`` entry point: run until the pass ends or ``stop`` is set."""
    return Producer(settings, engine, stop, metrics).run()


def enqueue_paths(
    settings: Settings,
    engine: Engine,
    paths: list[str],
    priority: str | None,
    delay: float,
) -> ProducerSummary:
    """``admin enqueue``: the named files, and the files under the named folders (with the
    producer's globs and symlink rules, relative to each folder). See the module doc."""
    check_enqueue_request(settings, paths, priority, delay)
    mode = Mode(file_keys=False, backpressure=False, priority=priority, delay=delay)
    producer = Producer(settings, engine, threading.Event(), mode=mode, reporter=quiet_reporter)
    cfg = settings.producer
    globs = Globs(cfg.include_globs, cfg.exclude_globs)
    files = walk_paths(paths, globs, cfg.follow_symlinks, producer.count_error)
    return producer.feed(files, "enqueue")


def check_enqueue_request(
    settings: Settings, paths: list[str], priority: str | None, delay: float
) -> None:
    """Refuse the whole request before enqueuing anything if any part of it is wrong."""
    if not paths:
        raise UsageError("enqueue needs at least one file or folder")
    if priority is not None and priority not in settings.worker.priorities:
        known = ", ".join(settings.worker.priorities)
        raise UsageError(f"unknown priority {priority!r}; configured: {known}")
    check_delay(delay)
    for path in paths:
        if not (os.path.isfile(path) or os.path.isdir(path)):
            raise UsageError(f"{path}: not a file or folder")
