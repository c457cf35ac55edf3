"""What a hub's round trip did, told: metrics, the ledger, and the warnings an operator needs.

Everything here is counted from the scripts' own replies (an ack that was fenced out is not a
completion), never from what the hub hoped would happen.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from jobqueue.engine import Call, Outcome
from jobqueue.observe.logs import clip
from jobqueue.roles.worker.context import WorkerContext
from jobqueue.roles.worker.tickets import Result, job_fields, job_id_of

Settle = tuple[list[Result], Call[list[bool]] | Call[Outcome]]


class Accounts:
    """Metrics and ledger lines of one worker process's settled jobs."""

    def __init__(self, ctx: WorkerContext) -> None:
        self.ctx = ctx
        self.log = ctx.log.bind(component="jobqueue.hub")
        self._completed = {q: ctx.metrics.jobs_completed.labels(q) for q in ctx.queues}
        self.job_seconds: float | None = None  # moving average of the handlers' run times

    def starts(self, starts: list[Call[list[bool]]]) -> None:
        lost = sum(flag is False for call in starts for flag in call.value)
        if lost:
            self.log.warning(
                "started jobs were no longer this worker's (reaped or handed back while it "
                "stalled); their results will be fenced out",
                n=lost,
            )

    def settles(self, settles: list[Settle]) -> None:
        for results, call in settles:
            value = call.value
            if isinstance(value, list):  # an ack of several jobs
                self._acks(results, value)
            else:
                self._failure(results[0], value, call)
            for result in results:
                average = self.job_seconds
                seconds = result.seconds
                self.job_seconds = seconds if average is None else 0.8 * average + 0.2 * seconds

    def _acks(self, results: list[Result], flags: list[bool]) -> None:
        ctx = self.ctx
        queue = results[0].ticket.claimed.queue
        acked = sum(flags)
        if acked:
            self._completed[queue].inc(acked)
        if acked < len(flags):
            self.log.warning(
                "acks fenced out: the jobs were no longer this worker's",
                n=len(flags) - acked,
                queue=queue,
            )
        if ctx.ledger.enabled:
            for result, recorded in zip(results, flags, strict=True):
                if recorded:
                    job_id = job_id_of(result.ticket)
                    ctx.ledger.record("done", ctx.worker_id, job_id, queue, result.seconds * 1000)

    def _failure(self, result: Result, outcome: Outcome, call: Call[Any]) -> None:
        ctx = self.ctx
        queue, job_id = result.ticket.claimed.queue, job_id_of(result.ticket)
        fields = job_fields(result.ticket, ctx.worker_id)
        if outcome == "fenced":
            self.log.warning("result fenced out: the job was no longer this worker's", **fields)
            return
        if not result.dead:
            ctx.metrics.jobs_failed.labels(queue).inc()
        ms = result.seconds * 1000
        error = clip(result.error or "")
        if outcome == "retried":
            ctx.metrics.jobs_retried.labels(queue).inc()
            ctx.ledger.record("retry", ctx.worker_id, job_id, queue, ms, result.error)
            self.log.warning("job failed; retry scheduled", error=error, **_due(call), **fields)
        else:
            ctx.metrics.jobs_dead_letter.labels(queue).inc()
            ctx.ledger.record("dead", ctx.worker_id, job_id, queue, ms, result.error)
            reason = error if result.dead else f"out of retries ({ctx.policy.max_retries})"
            self.log.error("job dead-lettered", reason=reason, error=error, **fields)


def _due(call: Call[Any]) -> dict[str, Any]:
    """When a scheduled retry is due: the backoff sent to retry.lua (ARGV[3], in ms) from
    now (Redis' clock decides; the hosts' clocks agree to within this line's purpose)."""
    delay = int(call.args[2]) / 1000
    due = datetime.now(UTC) + timedelta(seconds=delay)
    return {"retry_in_s": round(delay, 3), "due": due.isoformat(timespec="milliseconds")}
