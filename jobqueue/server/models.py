"""The API's pydantic models: request bodies and responses. They are the one schema behind
validation, the responses and the OpenAPI document (/api/v1/openapi.json). Responses are
built from the admin layer's own ``as_json`` documents, so the API says what ``--json`` says.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class Strict(BaseModel):
    """Unknown fields are errors: a typo must not be silently ignored."""

    model_config = ConfigDict(extra="forbid")


class Request(Strict):
    """A request body: no coercion either (``"all": "yes"`` was taken as true, ``"n":
    "3"`` as 3), as a JSON body states its types."""

    model_config = ConfigDict(extra="forbid", strict=True)


# -- errors ---------------------------------------------------------------------------------


class FieldProblem(Strict):
    field: str
    message: str


class ErrorDetail(Strict):
    status: int
    code: str = Field(description="Stable: bad_request, unauthorized, forbidden, not_found, ...")
    message: str = Field(description="One line: what was wrong, the value, the fix.")
    details: list[FieldProblem] = Field(default_factory=list)


class ErrorBody(Strict):
    error: ErrorDetail


WHEN = {
    400: "A body that cannot be decoded (invalid UTF-8, JSON nested too deep)",
    401: "No token, or an unknown one",
    403: "The token's role is too low",
    404: "No such queue or job",
    409: "The job's id or idempotency key is already known",
    413: "The body is over server.max_body_bytes, or the list over server.max_batch",
    422: "Invalid request",
    503: "Redis unavailable",
}


def documented(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The error answers of a route, for its OpenAPI document (each in the one error shape)."""
    return {status: {"model": ErrorBody, "description": WHEN[status]} for status in statuses}


# -- jobs -----------------------------------------------------------------------------------


class JobSpec(Request):
    """One job to enqueue (``Client.enqueue``'s arguments)."""

    # Any, not JsonValue: the body is JSON already, and JsonValue's check (a Python
    # discriminator per value) tripled the cost of validating a batch.
    payload: Any = Field(default=None, description="Any JSON value.")
    kind: str = Field(default="", description="Picks the worker's handler (worker.handlers).")
    filepath: str = ""
    idempotency_key: str = Field(
        default="", description="Enqueued once while the key is live or done."
    )
    job_id: str | None = Field(default=None, description="Your own id; refused once known.")


class Enqueued(Strict):
    enqueued: int
    duplicates: int
    ids: list[str | None] = Field(description="In request order; null for a duplicate.")


class JobView(Strict):
    """What became of a job (``jobqueue admin job ID --json``)."""

    id: str
    queue: str
    state: Literal["pending", "scheduled", "processing", "completed", "dead"]
    attempts: int
    last_error: str
    enqueued_at: datetime | None
    due_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None
    worker: str


class ActionReport(Strict):
    """A row action by id (requeue, delete, run-now): how many done, which ids not found."""

    action: Literal["requeue", "delete", "run-now"]
    done: int
    missing: list[str]


# -- queues ---------------------------------------------------------------------------------


class QueueView(Strict):
    pending: int
    scheduled: int
    reserved: int
    running: int
    processing: int
    completed: int
    dead_letter: int
    counters: dict[str, int]


class RateLimitView(Strict):
    per_second: float
    throttled_claims: int  # claims that found the bucket empty


class StatsView(Strict):
    """``jobqueue admin stats --json``; docs/admin.md has the vocabulary."""

    queues: dict[str, QueueView]
    completed: int
    dead_letter: int
    workers: int
    registered_workers: int
    breakers: dict[str, int]
    rate_limits: dict[str, RateLimitView]  # by priority: worker.rate_limits


class PeekEntry(Strict):
    position: int
    priority: str
    queue: str
    payload: Any
    due: str | None = None
    due_ms: int | None = None
    payload_encoding: Literal["base64"] | None = None


class PeekView(Strict):
    """``jobqueue admin peek --json``."""

    queue: str
    kind: Literal["pending", "scheduled", "completed", "dead_letter"]
    count: int
    entries: list[PeekEntry]


class WorkerView(Strict):
    id: str
    host: str
    pid: int | None
    started: str
    slots: int | None
    queues: list[str]
    breaker: str
    running: int
    reserved: int
    heartbeat_age_seconds: float | None
    alive: bool


class ReaperView(Strict):
    host: Any
    pid: Any
    swept_ago_seconds: float


class WorkersView(Strict):
    """``jobqueue admin workers --json``."""

    workers: list[WorkerView]
    reaper: ReaperView | None


# -- dead letters ---------------------------------------------------------------------------


class RequeueRequest(Request):
    """Requeue dead jobs oldest first: ``n`` of them (default 10), or ``all``; of one
    priority's queue or of all; ``dry_run`` counts and changes nothing."""

    queue: str | None = None
    n: int | None = Field(default=None, ge=1)
    all: bool = False
    dry_run: bool = False


class QueueRequeue(Strict):
    moved: int
    skipped: int
    remaining: int


class RequeueView(Strict):
    """``jobqueue admin requeue-dlq --json``."""

    dry_run: bool
    moved: int
    skipped: int
    remaining: int
    queues: dict[str, QueueRequeue]


class PurgeView(Strict):
    """``jobqueue admin purge-dlq --json``."""

    dry_run: bool
    purged: int
    queues: dict[str, int]


class Health(Strict):
    status: Literal["ok", "ready"]
