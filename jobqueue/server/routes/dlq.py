"""The dead-letter queue: list, requeue (filtered or all), purge (``admin peek --queue dlq``,
``requeue-dlq``, ``purge-dlq``). Row actions on one dead job are under /jobs/{id}."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from jobqueue.admin.repairs import purge_dlq, requeue_dlq, select_queues
from jobqueue.config import Settings
from jobqueue.errors import UsageError
from jobqueue.server.deps import Admin, PartsDep, Reader
from jobqueue.server.errors import ApiError
from jobqueue.server.models import PeekView, PurgeView, RequeueRequest, RequeueView, documented
from jobqueue.server.routes.queues import Count, peek_view

router = APIRouter(prefix="/dlq", tags=["dead letters"])

Priority = Annotated[str | None, Query(description="Only this priority's queue.")]
DryRun = Annotated[bool, Query(description="Count what would change; change nothing.")]


def _checked(settings: Settings, queue: str | None) -> str | None:
    try:
        select_queues(settings, queue)
    except UsageError:
        known = ", ".join(settings.worker.priorities)
        raise ApiError(422, f"queue: {queue!r} is not one of {known}") from None
    return queue


@router.get("", response_model_exclude_unset=True)
def dead_letters(parts: PartsDep, _caller: Reader, n: Count = 50) -> PeekView:
    """Dead jobs of every queue, oldest first (the order requeue takes), with their error."""
    return peek_view(parts.settings, parts, "dead_letter", n)


@router.post("/requeue", responses=documented(400))
def requeue(request: RequeueRequest, parts: PartsDep, _caller: Admin) -> RequeueView:
    """Requeue dead jobs oldest first, attempts reset: ``n`` (default 10) or ``all``."""
    queue = _checked(parts.settings, request.queue)
    report = requeue_dlq(
        parts.settings, request.n, request.all, queue, yes=True, dry_run=request.dry_run
    )
    return RequeueView.model_validate(report.as_json())


Most = Annotated[
    int | None,
    Query(ge=1, description="At most this many, oldest first (the count a dry run showed)."),
]


@router.delete("")
def purge(
    parts: PartsDep,
    _caller: Admin,
    queue: Priority = None,
    dry_run: DryRun = False,
    n: Most = None,
) -> PurgeView:
    """Delete every dead job (of one priority's queue with ``queue``), or the ``n`` oldest."""
    report = purge_dlq(parts.settings, True, _checked(parts.settings, queue), dry_run, n)
    return PurgeView.model_validate(report.as_json())
