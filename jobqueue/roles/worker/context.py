"""What the hub and the slots of one worker process share."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from jobqueue.config import Settings
from jobqueue.engine import Engine, RetryPolicy
from jobqueue.observe.ledger import Ledger
from jobqueue.observe.metrics import Metrics
from jobqueue.observe.tracing import Tracer
from jobqueue.roles.worker.breaker import CircuitBreaker
from jobqueue.roles.worker.guard import Guard
from jobqueue.roles.worker.scoreboard import Scoreboard


@dataclass
class WorkerContext:
    """One worker process: its identity, its Redis engine and its observability."""

    settings: Settings
    engine: Engine
    worker_id: str
    queues: list[str]  # queue names, in priority order; index = the scoreboard's queue field
    board: Scoreboard
    metrics: Metrics
    ledger: Ledger
    breaker: CircuitBreaker
    tracer: Tracer
    log: Any
    guard: Guard | None = None  # kills what handlers started if the process dies (guard.py)

    @property
    def policy(self) -> RetryPolicy:
        return RetryPolicy.from_config(self.settings.worker)

    def fresh_lease(self, now: float, generation: int) -> bool:
        """The lease a job was claimed under still holds, with room to spare: same
        generation (no registration since), and its last confirmed renewal recent enough
        that Redis keeps it for at least ``claim_timeout`` more (renewals every ttl/3)."""
        worker = self.settings.worker
        board = self.board
        return (
            board.generation == generation
            and now - board.confirmed_at < worker.heartbeat_ttl - worker.claim_timeout
        )
