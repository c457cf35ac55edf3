"""Settling the lists of a worker process that has exited, from its scoreboard.

A reaper that finds a dead worker knows only what Redis knows: jobs in its processing list
started, jobs in its reserved list did not. The supervisor knows more, from the scoreboard
the process left behind, and settles each job as the process itself would have:

=============== ============================================================================
scoreboard      what the supervisor does with the job
=============== ============================================================================
DONE_OK         ack it (it succeeded; the process died before its ack was sent)
DONE_FAILED     retry or dead-letter it with the handler's error, as the process would have
RUNNING         timed out: retry/dead-letter with the timeout as the error; the process
                crashed: one crash counted (any running job may have killed it; a crash
                spends the job's crash budget, not its retries: Job.with_crash); the
                process was stopped at shutdown: released, nothing counted
anything else   it never started: released to the head of its queue, no attempt charged
=============== ============================================================================

Jobs that started but whose start was not yet recorded are moved to the processing list
first (start.lua), so every transition is the ordinary fenced one.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

from jobqueue.engine import Batch, Engine, RetryPolicy
from jobqueue.roles.worker.scoreboard import Slip, State, digest


@dataclass(frozen=True, slots=True)
class Exit:
    """Why the process is gone: ``crash`` is the error to charge running jobs with (None at
    shutdown: they are released); ``timeouts`` maps scoreboard entries to their timeout."""

    crash: str | None
    timeouts: dict[int, str] = field(default_factory=dict)


@dataclass(slots=True)
class Settlement:
    """What settling one exited process did."""

    acked: int = 0
    charged: int = 0
    released: int = 0
    queues: dict[str, int] = field(default_factory=dict)  # jobs settled per queue

    @property
    def total(self) -> int:
        return self.acked + self.charged + self.released


class _Settler:
    def __init__(self, engine: Engine, worker_id: str, policy: RetryPolicy, why: Exit) -> None:
        self.engine = engine
        self.worker_id = worker_id
        self.policy = policy
        self.why = why
        self.batch: Batch = engine.batch()
        self.result = Settlement()

    def one(self, queue: str, raw: bytes, started: bool, slip: Slip | None) -> None:
        self.result.queues[queue] = self.result.queues.get(queue, 0) + 1
        state = slip.state if slip else State.RESERVED
        error = self._error(slip)
        if state not in (State.DONE_OK, State.DONE_FAILED, State.RUNNING) or (
            state is State.RUNNING and error is None
        ):
            self.batch.release(queue, self.worker_id, [raw], started=started)
            self.result.released += 1
            return
        if not started:
            self.batch.start(queue, self.worker_id, [raw])
        claimed = self.engine.decode(queue, raw)
        if state is State.DONE_OK:
            self.batch.ack(queue, self.worker_id, [claimed])
            self.result.acked += 1
        else:  # DONE_FAILED, or RUNNING when the process timed out or crashed
            assert slip is not None and error is not None
            crashed = state is State.RUNNING and slip.index not in self.why.timeouts
            self.batch.fail(claimed, self.worker_id, error, self.policy, crashed)
            self.result.charged += 1

    def _error(self, slip: Slip | None) -> str | None:
        if slip is None:
            return None
        if slip.state is State.DONE_FAILED:
            return slip.error or "handler failed (its worker process exited before settling it)"
        if slip.state is State.RUNNING:
            return self.why.timeouts.get(slip.index, self.why.crash)
        return None


def settle(
    engine: Engine,
    worker_id: str,
    queues: Sequence[str],
    slips: Sequence[Slip],
    policy: RetryPolicy,
    why: Exit,
) -> Settlement:
    """Settle everything the exited process's lists hold, in one round trip."""
    by_digest: dict[tuple[int, int], list[Slip]] = defaultdict(list)
    for slip in slips:
        by_digest[(slip.queue, slip.digest)].append(slip)
    settler = _Settler(engine, worker_id, policy, why)
    for index, queue in enumerate(queues):
        held = engine.held(queue, worker_id)
        for raws, started in ((held.processing, True), (held.reserved, False)):
            for raw in raws:
                matches = by_digest.get((index, digest(raw)))
                settler.one(queue, raw, started, matches.pop() if matches else None)
    settler.batch.execute()
    return settler.result
