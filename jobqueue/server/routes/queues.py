"""Reading the queues: stats, peek, workers (``admin stats``, ``peek``, ``workers``)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query

from jobqueue.admin.commands import PEEK_KINDS, overview, peek_with, queue_labels, workers_on
from jobqueue.config import Settings
from jobqueue.server.deps import PartsDep, Reader
from jobqueue.server.errors import ApiError
from jobqueue.server.models import PeekView, StatsView, WorkersView, documented

router = APIRouter(tags=["queues"])

Count = Annotated[int, Query(ge=1, le=1000, description="How many entries (per queue).")]
QueueName = Annotated[
    str,
    Path(description="A priority (its pending list), or completed, dead_letter|dlq, scheduled."),
]


@router.get("/stats")
def stats(parts: PartsDep, _caller: Reader) -> StatsView:
    """Counts per priority by state, live workers, breakers (``admin stats --json``)."""
    view = overview(parts.client.engine, parts.settings)
    return StatsView.model_validate(view.as_json())


def peek_view(settings: Settings, parts: PartsDep, queue: str, n: int) -> PeekView:
    known = [*queue_labels(settings), *queue_labels(settings).values(), *PEEK_KINDS]
    if queue not in known:
        raise ApiError(404, f"no queue {queue!r}: one of {', '.join(dict.fromkeys(known))}")
    return PeekView.model_validate(peek_with(parts.client.engine, settings, queue, n).as_json())


@router.get("/queues/{queue}/peek", response_model_exclude_unset=True, responses=documented(404))
def peek(queue: QueueName, parts: PartsDep, _caller: Reader, n: Count = 10) -> PeekView:
    """The next ``n`` entries, in each list's order (``admin peek --json``)."""
    return peek_view(parts.settings, parts, queue, n)


@router.get("/workers")
def workers(parts: PartsDep, _caller: Reader) -> WorkersView:
    """Registered workers with heartbeat age and breaker state (``admin workers --json``)."""
    return WorkersView.model_validate(workers_on(parts.client.engine, parts.settings).as_json())
