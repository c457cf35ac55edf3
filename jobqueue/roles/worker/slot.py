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
from jobqueue.roles.worker.tickets import Result, Ticket, job_fields


def describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"


class Slot(threading.Thread):
    """One of ``worker.count`` handler threads of a worker process."""

    def __init__(self, ctx: WorkerContext, hub: Hub, index: int) -> None:
        super().__init__(name=f"jobqueue-slot-{index}", daemon=True)
        self.ctx = ctx
        self.hub = hub
        self.index = index
        self.log = ctx.log.bind(component="jobqueue.slot")
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
                    self.log.exception("slot error", **job_fields(ticket, self.ctx.worker_id))
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
            if job is None:  # dead-lettered, and logged when that is done (accounts.py)
                return Result(ticket, claimed.error, dead=True)
            self.log.info(
                "job skipped: idempotency key already done", **job_fields(ticket, ctx.worker_id)
            )
            return Result(ticket, None)
        ctx.ledger.record("claim", ctx.worker_id, job.id, claimed.queue)
        error, seconds = self._run_handler(ticket, job)
        if isinstance(error, Unrunnable):
            if ticket.probe:
                ctx.breaker.cancel_probe()
            return Result(ticket, str(error), dead=True, seconds=seconds)
        ctx.breaker.record(error is None, probe=ticket.probe)
        if error is None and self._log_successes:
            fields = job_fields(ticket, ctx.worker_id)
            self.log.info("job finished", ok=True, ms=round(seconds * 1000, 3), **fields)
        # A failure is logged once it is settled, with what became of the job (accounts.py).
        return Result(ticket, None if error is None else describe(error), seconds=seconds)

    def _run_handler(self, ticket: Ticket, job: Job) -> tuple[BaseException | None, float]:
        ctx, queue = self.ctx, ticket.claimed.queue
        # The handler's own log lines carry the job's fields; "handler" names them unless
        # its logger names itself.
        tokens = structlog.contextvars.bind_contextvars(
            **job_fields(ticket, ctx.worker_id), component="handler"
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
