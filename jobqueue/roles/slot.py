"""One worker slot: claim -> run the handler -> ack, retry or dead-letter, in a thread.

Throughput without weaker guarantees: when queues are deep a slot claims a batch in one
script (each job protected in its processing list from that moment) and acks the finished
ones in one script. Batches shrink to one job when jobs are slow (the batch is sized so a
prefetched job waits about ``PREFETCH_WAIT`` seconds at most), so prefetching never
holds slow work hostage. Retries never sleep in the slot: they wait in the scheduled set.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import structlog

from jobqueue.config import Settings
from jobqueue.engine import ConnectionLost, Engine, RedisError, RetryPolicy
from jobqueue.job import Claimed, Job
from jobqueue.observe.ledger import Ledger
from jobqueue.observe.metrics import Metrics
from jobqueue.observe.tracing import Tracer
from jobqueue.roles.breaker import BreakerState, CircuitBreaker, Permit
from jobqueue.roles.handlers import (
    ForbiddenPath,
    Handler,
    HandlerError,
    build_handler,
    close_handler,
)

PREFETCH_WAIT = 0.05
ACK_DELAY = 0.02
BACKOFF_MAX = 5.0


class WeightedRotation:
    """Smooth weighted round-robin: weights 8:2 give H H H H L H H H H L..., evenly spread,
    so under sustained load each queue gets its share and none starves. An empty queue is
    skipped for the next one, so idle capacity is never wasted."""

    def __init__(self, weights: dict[str, int]) -> None:
        self.weights = weights
        self.total = sum(weights.values())
        self.current = dict.fromkeys(weights, 0)
        self.by_weight = sorted(weights, key=lambda q: -weights[q])

    def order(self) -> list[str]:
        for queue, weight in self.weights.items():
            self.current[queue] += weight
        best = max(self.current, key=self.current.__getitem__)
        self.current[best] -= self.total
        return [best, *(q for q in self.by_weight if q != best)]


@dataclass
class SlotContext:
    """What every slot of one worker process shares."""

    settings: Settings
    engine: Engine
    metrics: Metrics
    ledger: Ledger
    breaker: CircuitBreaker
    stop: threading.Event
    queues: dict[str, str]  # priority -> queue name
    tracer: Tracer

    @property
    def policy(self) -> RetryPolicy:
        return RetryPolicy.from_config(self.settings.worker)


class Slot(threading.Thread):
    """A thread with its own worker id, processing lists and handler instance."""

    def __init__(self, ctx: SlotContext, index: int, worker_id: str) -> None:
        super().__init__(name=f"jobqueue-slot-{index}", daemon=True)
        self.ctx = ctx
        self.worker_id = worker_id
        self.engine = ctx.engine
        self.policy = ctx.policy
        self.handler: Handler = build_handler(ctx.settings)
        weights = {ctx.queues[p]: ctx.settings.worker.weights[p] for p in ctx.queues}
        self.rotation = WeightedRotation(weights)
        names = list(ctx.queues.values())
        self.block_queue = names[index % len(names)]
        self.log: Any = structlog.get_logger("jobqueue.worker").bind(worker=worker_id)
        self._lock = threading.Lock()
        self._in_hand: list[Claimed] = []
        self._acks: list[Claimed] = []
        self._first_ack_at = 0.0
        self._abandoned = False
        self._needs_adopt = False
        self._probe_open = False
        self._next_self_check = time.monotonic() + ctx.settings.worker.heartbeat_ttl
        self._seconds_per_job = 0.01

    # -- the loop ------------------------------------------------------------------------

    def run(self) -> None:
        failures = 0
        while not self.ctx.stop.is_set():
            try:
                self._cycle()
                failures = 0
            except RedisError as exc:
                failures += 1
                self._needs_adopt = self._needs_adopt or isinstance(exc, ConnectionLost)
                self._back_off(failures, "redis error; backing off", exc)
            except Exception as exc:  # a bug or a full disk must not silently end the slot
                failures += 1
                self._needs_adopt = True  # whatever it held is settled from its list
                self.log.exception("slot error; backing off", error=str(exc))
                self._back_off(failures, "slot error; backing off", exc)
        self._finish()

    def _back_off(self, failures: int, message: str, exc: BaseException) -> None:
        delay = min(BACKOFF_MAX, 0.1 * 2**failures)
        self.log.warning(message, error=str(exc), retry_in=delay)
        self.ctx.stop.wait(delay)

    def _cycle(self) -> None:
        if self._needs_adopt or time.monotonic() >= self._next_self_check:
            self._adopt()
        permit = self.ctx.breaker.acquire()
        if permit is Permit.WAIT:
            self.ctx.stop.wait(min(self.ctx.breaker.wait_hint(), 0.5))
            return
        probe = self._probe_open = permit is Permit.PROBE
        try:
            queue, raws = self._claim(1 if probe else self._batch_size())
            if raws:
                self._process(queue, raws, probe)
        finally:
            # An error (or no job) between claim and outcome must not freeze the breaker.
            self._settle_probe(None)

    def _settle_probe(self, ok: bool | None) -> None:
        """Report the probe's outcome (None: it had none) exactly once per permit."""
        if self._probe_open:
            self._probe_open = False
            if ok is None:
                self.ctx.breaker.cancel_probe()
            else:
                self.ctx.breaker.record(ok, probe=True)

    def _batch_size(self) -> int:
        fits = int(PREFETCH_WAIT / max(self._seconds_per_job, 1e-6))
        return max(1, min(self.ctx.settings.worker.prefetch, fits))

    def _claim(self, limit: int) -> tuple[str, list[bytes]]:
        for queue in self.rotation.order():
            raws = self.engine.claim(queue, self.worker_id, limit)
            if raws:
                return queue, raws
        if self.ctx.stop.is_set():
            return self.block_queue, []
        timeout = self.ctx.settings.worker.claim_timeout
        raw = self.engine.claim_blocking(self.block_queue, self.worker_id, timeout)
        return self.block_queue, [raw] if raw is not None else []

    def _adopt(self) -> None:
        """Settle whatever our processing lists hold that we do not know about: a claim whose
        reply was lost, an ack lost in a failover that redis-py's own retries hid from us.
        Runs after every connection error and, between batches, once per heartbeat_ttl."""
        self._flush_acks()
        for queue in self.ctx.queues.values():
            raws = self.engine.held(queue, self.worker_id)
            if raws:
                self.log.info("adopting jobs from own processing list", queue=queue, n=len(raws))
                self._process(queue, raws, probe=False)
        self._needs_adopt = False
        self._next_self_check = time.monotonic() + self.ctx.settings.worker.heartbeat_ttl

    # -- processing ----------------------------------------------------------------------

    def _process(self, queue: str, raws: Sequence[bytes], probe: bool) -> None:
        batch = [self.engine.decode(queue, raw) for raw in raws]
        with self._lock:
            self._in_hand = list(batch)
        self.ctx.metrics.jobs_consumed.labels(queue).inc(len(batch))
        done = self._already_done(queue, batch)
        for claimed in batch:
            if self.ctx.stop.is_set() or (
                not probe and self.ctx.breaker.state is not BreakerState.CLOSED
            ):
                self._release_in_hand(queue)
                break
            self._run_one(claimed, claimed.raw in done)
            with self._lock:
                if claimed in self._in_hand:  # abandon() may have taken it meanwhile
                    self._in_hand.remove(claimed)
            if self._acks and time.perf_counter() - self._first_ack_at > ACK_DELAY:
                self._flush_acks()
        self._flush_acks()

    def _already_done(self, queue: str, batch: list[Claimed]) -> set[bytes]:
        keyed = [c for c in batch if c.job and c.job.idempotency_key]
        if not keyed:
            return set()
        flags = self.engine.done_flags(queue, [c.job.idempotency_key for c in keyed if c.job])
        return {c.raw for c, done in zip(keyed, flags, strict=True) if done}

    def _run_one(self, claimed: Claimed, already_done: bool) -> None:
        job = claimed.job
        if job is None or already_done:
            self._settle_probe(None)
            if job is None:
                self._settle_dead(claimed, claimed.error)
            else:
                self.log.info("job skipped: idempotency key already done", job_id=job.id)
                self._queue_ack(claimed)
            return
        self.ctx.ledger.record("claim", self.worker_id, job.id, claimed.queue)
        if self.ctx.tracer.enabled:
            error, seconds = self._run_traced(claimed, job)
        else:
            error, seconds = self._run_handler(claimed)
        if isinstance(error, ForbiddenPath):
            self._settle_probe(None)
            self._settle_dead(claimed, str(error))
            return
        if self._probe_open:
            self._settle_probe(error is None)
        else:
            self.ctx.breaker.record(error is None)
        if self._abandoned:
            return
        if error is None:
            self._queue_ack(claimed)
            self.ctx.ledger.record("done", self.worker_id, job.id, claimed.queue, seconds * 1000)
        else:
            self._settle_failure(claimed, f"{type(error).__name__}: {error}", seconds)
        self.log.info(
            "job finished",
            job_id=job.id,
            queue=claimed.queue,
            trace_id=job.trace_id,
            ok=error is None,
            ms=round(seconds * 1000, 3),
            retries=job.retries,
        )

    def _run_traced(self, claimed: Claimed, job: Job) -> tuple[Exception | None, float]:
        """Claim and process spans under the job's own trace context."""
        attributes = {
            "jobqueue.job_id": job.id,
            "jobqueue.queue": claimed.queue,
            "jobqueue.retries": job.retries,
            "jobqueue.worker": self.worker_id,
        }
        tracer = self.ctx.tracer
        with tracer.span("claim", job.trace_id, job.span_id, **attributes):
            pass
        with tracer.span("process", job.trace_id, job.span_id, **attributes):
            return self._run_handler(claimed)

    def _run_handler(self, claimed: Claimed) -> tuple[Exception | None, float]:
        job = claimed.job
        assert job is not None
        metrics = self.ctx.metrics
        metrics.jobs_inflight.inc()
        structlog.contextvars.bind_contextvars(
            job_id=job.id, worker=self.worker_id, queue=claimed.queue, trace_id=job.trace_id
        )
        started = time.perf_counter()
        error: Exception | None = None
        try:
            self.handler(job)
        except Exception as exc:  # any handler failure is the job's, never the slot's
            error = exc
        except BaseException as exc:  # SystemExit, CancelledError... from a handler: still
            error = HandlerError(f"{type(exc).__name__}: {exc}")  # the job's failure
        seconds = time.perf_counter() - started
        structlog.contextvars.clear_contextvars()
        metrics.jobs_inflight.dec()
        metrics.job_processing_duration.labels(claimed.queue).observe(seconds)
        self._seconds_per_job = 0.8 * self._seconds_per_job + 0.2 * seconds
        return error, seconds

    # -- settling ------------------------------------------------------------------------

    def _queue_ack(self, claimed: Claimed) -> None:
        with self._lock:
            if not self._acks:
                self._first_ack_at = time.perf_counter()
            self._acks.append(claimed)

    def _flush_acks(self) -> None:
        with self._lock:
            acks, self._acks = self._acks, []
        queues = list(dict.fromkeys(c.queue for c in acks))
        for i, queue in enumerate(queues):
            mine = [c for c in acks if c.queue == queue]
            try:
                flags = self.engine.ack(queue, self.worker_id, mine)
            except RedisError:
                unsent = [c for c in acks if c.queue in queues[i:]]
                with self._lock:  # keep them; the next flush (or adoption) settles them
                    self._acks = unsent + self._acks
                raise
            owned = sum(flags)
            self.ctx.metrics.jobs_completed.labels(queue).inc(owned)
            if owned < len(mine):
                self.log.warning("acks fenced out: jobs were no longer ours", n=len(mine) - owned)

    def _settle_failure(self, claimed: Claimed, error: str, seconds: float) -> None:
        self._flush_acks()
        metrics, job_id = self.ctx.metrics, claimed.job.id if claimed.job else "?"
        metrics.jobs_failed.labels(claimed.queue).inc()
        outcome = self.engine.fail(claimed, self.worker_id, error, self.policy)
        if outcome == "retried":
            metrics.jobs_retried.labels(claimed.queue).inc()
            self.ctx.ledger.record(
                "retry", self.worker_id, job_id, claimed.queue, seconds * 1000, error
            )
        elif outcome == "dead":
            metrics.jobs_dead_letter.labels(claimed.queue).inc()
            self.ctx.ledger.record(
                "dead", self.worker_id, job_id, claimed.queue, seconds * 1000, error
            )

    def _settle_dead(self, claimed: Claimed, reason: str) -> None:
        self._flush_acks()
        if self.engine.bury(claimed, self.worker_id, reason) == "dead":
            self.ctx.metrics.jobs_dead_letter.labels(claimed.queue).inc()
            job_id = claimed.job.id if claimed.job else "(malformed)"
            self.ctx.ledger.record("dead", self.worker_id, job_id, claimed.queue, error=reason)
            self.log.warning("job dead-lettered", job_id=job_id, queue=claimed.queue, reason=reason)

    def _release_in_hand(self, queue: str) -> None:
        with self._lock:
            in_hand, self._in_hand = self._in_hand, []
        self.engine.release(queue, self.worker_id, [c.raw for c in in_hand])
        for claimed in in_hand:
            job_id = claimed.job.id if claimed.job else "(malformed)"
            self.ctx.ledger.record("requeued", self.worker_id, job_id, queue)

    def _finish(self) -> None:
        """Leaving the loop: send finished acks; nothing unstarted stays in our hands."""
        close_handler(self.handler)
        try:
            self._flush_acks()
        except RedisError as exc:
            self.log.warning("could not ack on shutdown; the reaper will recover", error=str(exc))

    # -- shutdown from the outside -------------------------------------------------------

    def abandon(self) -> int:
        """Grace expired with a job still running: ack what finished, give the rest back to
        the queue head (no attempt counted). A late handler result is then fenced out."""
        with self._lock:
            self._abandoned = True
            in_hand = [c for c in self._in_hand if c not in self._acks]
            self._in_hand = []
        self._flush_acks()
        released = 0
        for queue in {c.queue for c in in_hand}:
            raws = [c.raw for c in in_hand if c.queue == queue]
            released += self.engine.release(queue, self.worker_id, raws)
        return released

    def holds_nothing(self) -> bool:
        """True when this slot's processing lists are empty, so deregistering loses nothing."""
        return not any(self.engine.held(q, self.worker_id) for q in self.ctx.queues.values())
