"""A slot: a thread that runs handlers, one job at a time, for the hub.

The slot never talks to Redis. It takes a ticket from the hub (``next_ticket`` starts it
under the scoreboard lock, or hands it back), runs the handler, and reports the result; the
hub records the start and settles the result in its next round trip.
"""

from __future__ import annotations

import threading
import time

import structlog

from jobqueue.job import Job
from jobqueue.roles.worker.context import WorkerContext
from jobqueue.roles.worker.handlers import Unrunnable, build_handler, close_handler
from jobqueue.roles.worker.hub import Hub
from jobqueue.roles.worker.tickets import Result, Ticket, job_id_of


def describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"


class Slot(threading.Thread):
    """One of ``worker.count`` handler threads of a worker process."""

    def __init__(self, ctx: WorkerContext, hub: Hub, index: int) -> None:
        super().__init__(name=f"jobqueue-slot-{index}", daemon=True)
        self.ctx = ctx
        self.hub = hub
        self.index = index
        self.handler = build_handler(ctx.settings, on_spawn=self._spawned)
        self._ticket: Ticket | None = None
        self._durations = {q: ctx.metrics.job_processing_duration.labels(q) for q in ctx.queues}
        self._log_successes = ctx.settings.observability.log_level in ("debug", "info")

    def _spawned(self, pgid: int) -> None:
        """An exec handler started its process group (``pgid``), or it is gone (0): show the
        supervisor, and the guard, who kill it should this process die."""
        ticket, guard = self._ticket, self.ctx.guard
        if ticket is None:
            return
        if guard is not None:
            previous = self.ctx.board.entries[ticket.index].pgid
            if pgid:
                guard.watch(pgid)
            else:
                guard.forget(previous)
        self.ctx.board.set_pgid(ticket.index, pgid)

    def run(self) -> None:
        try:
            while (ticket := self.hub.next_ticket(self.index)) is not None:
                self._ticket = ticket
                try:
                    result = self._execute(ticket)
                except Exception as exc:  # a bug here must fail the job, never lose it
                    self.ctx.log.exception("slot error", job_id=job_id_of(ticket))
                    result = Result(ticket, f"internal error: {describe(exc)}")
                self._ticket = None
                self.hub.report(result)
        finally:
            close_handler(self.handler)

    def _execute(self, ticket: Ticket) -> Result:
        claimed, ctx = ticket.claimed, self.ctx
        job = claimed.job
        if job is None or ticket.skip:
            if ticket.probe:
                ctx.breaker.cancel_probe()
            if job is None:
                ctx.log.warning(
                    "malformed job dead-lettered", queue=claimed.queue, reason=claimed.error
                )
                return Result(ticket, claimed.error, dead=True)
            ctx.log.info("job skipped: idempotency key already done", job_id=job.id)
            return Result(ticket, None)
        ctx.ledger.record("claim", ctx.worker_id, job.id, claimed.queue)
        error, seconds = self._run_handler(ticket, job)
        if isinstance(error, Unrunnable):
            if ticket.probe:
                ctx.breaker.cancel_probe()
            ctx.log.warning(
                "job dead-lettered", job_id=job.id, queue=claimed.queue, reason=str(error)
            )
            return Result(ticket, str(error), dead=True, seconds=seconds)
        ctx.breaker.record(error is None, probe=ticket.probe)
        text = None if error is None else describe(error)
        if text is not None or self._log_successes:
            self._log_finished(ticket, job, text, seconds)
        return Result(ticket, text, seconds=seconds)

    def _run_handler(self, ticket: Ticket, job: Job) -> tuple[BaseException | None, float]:
        ctx, queue = self.ctx, ticket.claimed.queue
        tokens = structlog.contextvars.bind_contextvars(
            job_id=job.id, worker=ctx.worker_id, queue=queue, trace_id=job.trace_id
        )
        started = time.perf_counter()
        error: BaseException | None = None
        try:
            if ctx.tracer.enabled:
                self._traced(ticket, job)
            else:
                self.handler(job)
        except Exception as exc:  # any handler failure is the job's, never the slot's
            error = exc
        except BaseException as exc:  # SystemExit, KeyboardInterrupt... from a handler
            error = exc
        seconds = time.perf_counter() - started
        structlog.contextvars.reset_contextvars(**tokens)  # clear_contextvars copies them all
        self._durations[queue].observe(seconds)
        return error, seconds

    def _traced(self, ticket: Ticket, job: Job) -> None:
        """Claim and process spans under the job's own trace context."""
        attributes = {
            "jobqueue.job_id": job.id,
            "jobqueue.queue": ticket.claimed.queue,
            "jobqueue.retries": job.retries,
            "jobqueue.worker": self.ctx.worker_id,
        }
        tracer = self.ctx.tracer
        with tracer.span("claim", job.trace_id, job.span_id, **attributes):
            pass
        with tracer.span("process", job.trace_id, job.span_id, **attributes):
            self.handler(job)

    def _log_finished(self, ticket: Ticket, job: Job, error: str | None, seconds: float) -> None:
        """The canonical line per finished job: info when it succeeded, warning with the
        error when it failed."""
        fields = {
            "job_id": job.id,
            "queue": ticket.claimed.queue,
            "worker": self.ctx.worker_id,
            "trace_id": job.trace_id,
            "ms": round(seconds * 1000, 3),
            "attempt": job.retries + 1,
        }
        if error is None:
            self.ctx.log.info("job finished", ok=True, **fields)
        else:
            self.ctx.log.warning("job failed", ok=False, error=error[-500:], **fields)
