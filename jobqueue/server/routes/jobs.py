"""Jobs: enqueue (one or a list), what became of one, and the row actions by id.

Sync routes: FastAPI runs them in its thread pool, and the client's redis-py pool is
thread-safe. Enqueue is async: ``Client.prepare`` for every job (all are checked before any
is sent), then ``Client.send`` through the Sender (sender.py), which shares one pipelined
round trip among the requests that arrive together.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Path, Query, Request

from jobqueue.admin.repairs import JobAction, act_on_jobs
from jobqueue.client import Duplicate, Prepared
from jobqueue.config import parse_duration
from jobqueue.errors import UsageError
from jobqueue.job import PayloadError, check_delay
from jobqueue.server.deps import Admin, Enqueuer, Parts, PartsDep, Reader, shared_parts
from jobqueue.server.errors import ApiError
from jobqueue.server.models import ActionReport, Enqueued, JobSpec, JobView, documented

router = APIRouter(tags=["jobs"])

Jobs = Annotated[
    JobSpec | list[JobSpec],
    Body(description="One job, or a list of jobs sent in one round trip."),
]
Delay = Annotated[
    str, Query(description="Run no sooner than this from now: 500ms, 30s, 5m, or seconds.")
]
JobId = Annotated[str, Path(description="The job's id, as enqueue returned it.")]


def _delay(text: str) -> float:
    try:
        return check_delay(parse_duration(text))
    except UsageError as exc:
        raise ApiError(422, str(exc)) from None
    except ValueError as exc:
        raise ApiError(422, f"delay: {exc}") from None


@router.post("/queues/{priority}/jobs", status_code=201, responses=documented(400, 404, 409, 413))
async def enqueue(
    priority: str, jobs: Jobs, request: Request, _caller: Enqueuer, delay: Delay = "0s"
) -> Enqueued:
    """Enqueue one job or a list (at most server.max_batch). A single job that is already
    known (its job_id or idempotency_key) is 409; in a list its id is null."""
    # The parts from the request, not PartsDep: each dependency costs FastAPI ~70,000
    # instructions a request (callgrind), a seventh of this route's framework cost.
    parts = shared_parts(request)
    settings = parts.settings
    if priority not in settings.worker.priorities:
        known = ", ".join(settings.worker.priorities)
        raise ApiError(404, f"no queue for priority {priority!r}: worker.priorities has {known}")
    specs = jobs if isinstance(jobs, list) else [jobs]
    if len(specs) > settings.server.max_batch:
        raise ApiError(
            413,
            f"{len(specs)} jobs in one request; server.max_batch is {settings.server.max_batch}",
        )
    prepared = [_prepare(parts, i, spec, priority) for i, spec in enumerate(specs)]
    accepted = await parts.sender.send(prepared, _delay(delay))
    ids = [p.id if ok else None for p, ok in zip(prepared, accepted, strict=True)]
    if not isinstance(jobs, list) and ids[0] is None:
        raise Duplicate(f"job {prepared[0].id} is already known (id or idempotency key)")
    enqueued = len(ids) - ids.count(None)
    parts.metrics.jobs_produced.labels(queue=settings.worker.queue_of(priority)).inc(enqueued)
    return Enqueued(enqueued=enqueued, duplicates=len(ids) - enqueued, ids=ids)


def _prepare(parts: Parts, position: int, spec: JobSpec, priority: str) -> Prepared:
    try:
        return parts.client.prepare(
            {
                "payload": spec.payload,
                "kind": spec.kind,
                "filepath": spec.filepath,
                "idempotency_key": spec.idempotency_key,
                "job_id": spec.job_id,
                "priority": priority,
            }
        )
    except (UsageError, PayloadError) as exc:
        raise ApiError(422, f"job {position}: {exc}") from None


@router.get("/jobs/{job_id:path}", responses=documented(404))
def get_job(job_id: JobId, parts: PartsDep, _caller: Reader) -> JobView:
    """What became of a job: its state, attempts, last error and times."""
    record = parts.client.get(job_id)
    if record is None:
        completed_ttl = parts.settings.worker.completed_ttl
        raise ApiError(
            404,
            f"no job {job_id!r}: never enqueued here, or finished more than "
            f"worker.completed_ttl ({completed_ttl:g}s) ago",
        )
    return JobView.model_validate(record.as_json())


def _act(parts: PartsDep, action: JobAction, job_id: str) -> ActionReport:
    report = act_on_jobs(parts.settings, action, [job_id])
    return ActionReport.model_validate(report.as_json())


@router.post("/jobs/{job_id:path}/requeue")
def requeue_job(job_id: JobId, parts: PartsDep, _caller: Admin) -> ActionReport:
    """Send one dead job back to its queue, attempts reset (``missing`` when not dead)."""
    return _act(parts, "requeue", job_id)


@router.post("/jobs/{job_id:path}/run-now")
def run_now(job_id: JobId, parts: PartsDep, _caller: Admin) -> ActionReport:
    """Move one scheduled job (a retry in backoff, a delayed job) to its queue now."""
    return _act(parts, "run-now", job_id)


@router.delete("/jobs/{job_id:path}")
def delete_job(job_id: JobId, parts: PartsDep, _caller: Admin) -> ActionReport:
    """Delete one dead job for good (``missing`` when it is not in a dead-letter list)."""
    return _act(parts, "delete", job_id)
