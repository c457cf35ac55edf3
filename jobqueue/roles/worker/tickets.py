"""What a worker process's hub and slots pass between them: tickets, results, the outbox."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from jobqueue.job import Claimed


@dataclass(slots=True, eq=False)
class Ticket:
    """A claimed job in this process's hands, from claim to settlement."""

    index: int  # its scoreboard entry
    claimed: Claimed
    generation: int  # the lease generation it was claimed under
    claimed_at: float
    probe: bool = False  # the circuit breaker's half-open probe
    skip: bool = False  # its idempotency key is already done: settle without running


@dataclass(slots=True)
class Result:
    """A finished ticket: ``error`` None for success; ``dead`` to dead-letter at once."""

    ticket: Ticket
    error: str | None
    dead: bool = False
    seconds: float = 0.0


@dataclass(slots=True)
class Outbox:
    """What the next round trip must tell Redis."""

    started: list[Ticket] = field(default_factory=list)
    results: list[Result] = field(default_factory=list)
    returns: list[Ticket] = field(default_factory=list)  # hand back, unstarted
    # taken back by the supervisor, which releases them itself: only to be forgotten here.
    # Releasing them again could remove a new copy of the same bytes claimed meanwhile.
    forgets: list[Ticket] = field(default_factory=list)
    since: float = 0.0  # monotonic time the first of these went in

    def __bool__(self) -> bool:
        return bool(self.started or self.results or self.returns or self.forgets)

    def merge(self, other: Outbox) -> None:
        self.started += other.started
        self.results += other.results
        self.returns += other.returns
        self.forgets += other.forgets


def by_queue(tickets: Iterable[Ticket]) -> dict[str, list[Ticket]]:
    grouped: dict[str, list[Ticket]] = defaultdict(list)
    for ticket in tickets:
        grouped[ticket.claimed.queue].append(ticket)
    return grouped


def job_id_of(ticket: Ticket) -> str:
    return ticket.claimed.job.id if ticket.claimed.job else "(malformed)"


def job_fields(ticket: Ticket, worker_id: str) -> dict[str, Any]:
    """The fields every log line about this job carries, whatever part of the worker writes
    it, so that one query finds a job's whole story. ``attempt`` counts runs: retries and
    crashes of its worker so far, plus this one."""
    claimed = ticket.claimed
    job = claimed.job
    return {
        "job_id": job_id_of(ticket),
        "queue": claimed.queue,
        "worker": worker_id,
        "filepath": job.filepath if job else None,
        "attempt": job.retries + job.crashes + 1 if job else None,
        "trace_id": job.trace_id if job else None,
    }
