"""The Python client: enqueue jobs from code and ask what happened to them.

    from jobqueue import Client

    with Client.from_config() as client:          # config/config.yaml + JOBQUEUE_* variables
        job = client.enqueue({"user": 42}, kind="welcome-mail", priority="high")
        record = client.wait(job.id, timeout=30)  # JobRecord: state, attempts, last_error...

A thin face over the engine (the same transitions the producer and ``admin enqueue`` use),
so a job enqueued here is one the CLI, the TUI and the HTTP API see the same way. Priorities
are checked against the configuration: a typo is an error, never a new queue nobody serves.
The API follows RQ's ``Queue.enqueue`` / ``Job.fetch`` and asynq's ``Client.Enqueue`` with
``TaskID`` (an id the caller chooses is refused once known: asynq's ErrTaskIDConflict).

No asyncio twin: the calls are one round trip each; run them in a thread
(``asyncio.to_thread``) from async code.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from pydantic import ValidationError
from pydantic_core import PydanticSerializationError

from jobqueue.config import Settings, describe_validation_error, load_settings
from jobqueue.engine import Engine, Inspector, JobRecord, Stats
from jobqueue.errors import ConfigError, JobQueueError, UsageError
from jobqueue.job import Job, PayloadError, encode_fields, new_job_fields

KNOWN_FIELDS = ("payload", "filepath", "kind", "priority", "idempotency_key", "job_id")
MAX_KEY_CHARS = 512  # an idempotency key names a Redis key, kept for worker.dedupe_ttl
MAX_KIND_CHARS = 128  # a handler's name
ID_PATTERN = re.compile(r"^[!-~]{1,128}$")  # printable ASCII without spaces: it names a key


def _settings_for(url: str) -> Settings:
    """Every setting at its default (environment overrides applied) but the Redis URL."""
    try:
        return Settings(redis={"url": url})
    except ValidationError as exc:
        raise ConfigError(describe_validation_error(exc)) from exc


@dataclass(frozen=True, slots=True)
class Prepared:
    """A job checked by ``Client.prepare`` and not yet sent: its fields, its queue and its
    JSON, serialized once (the bytes whose size was checked are the bytes sent). The
    ``Job`` is built only when asked for: the HTTP API, enqueueing thousands per request,
    needs the ids alone."""

    fields: dict[str, Any]
    queue: str
    raw: bytes

    @property
    def id(self) -> str:
        job_id: str = self.fields["id"]
        return job_id

    @property
    def job(self) -> Job:
        return Job(**self.fields)


class Duplicate(JobQueueError):
    """Redis already knows this job: its idempotency key is live or done, or the id the
    caller chose has a record. Nothing was enqueued."""


class Client:
    """A connection to one jobqueue deployment (one Redis, one namespace).

    Thread-safe: the underlying redis-py client pools connections. Close it (or use it as a
    context manager) to release them.
    """

    def __init__(self, url: str | None = None, *, settings: Settings | None = None) -> None:
        """``url``: a Redis URL (every other setting at its default), or ``settings`` as
        loaded by ``load_settings``; neither: the configuration as ``from_config`` finds it."""
        if url is not None and settings is not None:
            raise UsageError("Client: give url or settings, not both")
        if settings is None:
            settings = load_settings() if url is None else _settings_for(url)
        self.settings = settings
        self.engine = Engine.from_settings(settings)
        worker = settings.worker
        self._queues = {p: worker.queue_of(p) for p in worker.priorities}
        self._default_priority = settings.producer.default_priority
        self._max_payload_bytes = worker.max_payload_bytes

    @classmethod
    def from_config(cls, path: str | None = None) -> Client:
        """The client of the deployment a config file describes (``path``; by default
        ``$JOBQUEUE_CONFIG`` or ``config/config.yaml``), environment overrides applied.
        Raises ConfigError naming each bad key."""
        return cls(settings=load_settings(path))

    # -- producing -------------------------------------------------------------------------

    def enqueue(
        self,
        payload: Any = None,
        *,
        filepath: str = "",
        kind: str = "",
        priority: str | None = None,
        delay: float = 0.0,
        idempotency_key: str = "",
        job_id: str | None = None,
    ) -> Job:
        """Enqueue one job and return it (its ``id`` is what ``get`` and ``wait`` take).

        ``payload``: any JSON value; ``kind`` picks the worker's handler
        (``worker.handlers``); ``priority`` one of ``worker.priorities`` (default
        ``producer.default_priority``); ``delay`` seconds before it may run;
        ``idempotency_key``: enqueued once while the key is live or done
        (``producer.dedupe_ttl``); ``job_id``: an id of the caller's, refused once known.
        Raises UsageError for an unknown priority, PayloadError for a payload that is not
        JSON or is over ``worker.max_payload_bytes``, Duplicate when Redis already knows
        the job, RedisError when Redis cannot be reached (the job may or may not be in;
        enqueue again with the same ``job_id`` or ``idempotency_key`` to be sure)."""
        prepared = self._job(payload, filepath, kind, priority, idempotency_key, job_id)
        if not self.send([prepared], delay=delay)[0]:
            raise Duplicate(f"job {prepared.id} is already known (id or idempotency key)")
        return prepared.job

    def enqueue_many(
        self, jobs: Iterable[Mapping[str, Any]], *, delay: float = 0.0
    ) -> list[Job | None]:
        """Enqueue many jobs in one round trip (one per shard on a Cluster). Each mapping
        takes ``enqueue``'s keyword arguments (``payload``, ``filepath``, ``kind``,
        ``priority``, ``idempotency_key``, ``job_id``). Returns the jobs in order, None for
        each that Redis already knew. Every job is checked before any is sent; the errors
        are ``enqueue``'s (EnqueueRefused, a RedisError, says which went in when Redis
        refused some)."""
        prepared = [self.prepare(spec) for spec in jobs]
        accepted = self.send(prepared, delay=delay)
        return [p.job if ok else None for p, ok in zip(prepared, accepted, strict=True)]

    def prepare(self, spec: Mapping[str, Any]) -> Prepared:
        """A job built and checked from ``enqueue``'s keyword arguments, not yet sent: for
        callers that check a whole input before sending any of it. Raises as ``enqueue``."""
        unknown = sorted(set(spec).difference(KNOWN_FIELDS))
        if unknown:
            known = ", ".join(KNOWN_FIELDS)
            raise UsageError(f"unknown job field {', '.join(unknown)}; use {known}")
        return self._job(**spec)

    def send(self, prepared: Sequence[Prepared], *, delay: float = 0.0) -> list[bool]:
        """Enqueue prepared jobs in one round trip: one flag per job, True enqueued, False
        already known to Redis (its id or idempotency key). Errors as ``enqueue_many``."""
        outgoing = [(p.raw, p.fields["idempotency_key"], p.queue) for p in prepared]
        return self.engine.enqueue_serialized(outgoing, delay, dedupe_id=True)

    def _job(
        self,
        payload: Any = None,
        filepath: str = "",
        kind: str = "",
        priority: str | None = None,
        idempotency_key: str = "",
        job_id: str | None = None,
    ) -> Prepared:
        priority = priority or self._default_priority
        queue = self._queues.get(priority)
        if queue is None:
            raise UsageError(
                f"unknown priority {priority!r}: worker.priorities has {', '.join(self._queues)}"
            )
        for name, value, most in (
            ("filepath", filepath, None),
            ("kind", kind, MAX_KIND_CHARS),
            ("idempotency_key", idempotency_key, MAX_KEY_CHARS),
        ):
            if not isinstance(value, str):
                raise UsageError(f"{name} must be a string, not {type(value).__name__}")
            if most is not None and len(value) > most:
                raise UsageError(f"{name} of {len(value)} characters: at most {most}")
        if job_id is not None and not (isinstance(job_id, str) and ID_PATTERN.match(job_id)):
            raise UsageError(f"job_id {job_id!r}: 1-128 printable characters, no spaces")
        fields = new_job_fields(
            filepath, priority, 0, idempotency_key, job_id, kind=kind, payload=payload
        )
        try:
            raw = encode_fields(fields)  # a payload that is not JSON fails here, not in a worker
        except PydanticSerializationError as exc:
            raise PayloadError(f"payload: not JSON-serializable: {exc}") from None
        limit = self._max_payload_bytes
        if len(raw) > limit:
            raise PayloadError(f"job of {len(raw)} bytes exceeds worker.max_payload_bytes={limit}")
        return Prepared(fields, queue, raw)

    # -- asking ----------------------------------------------------------------------------

    def get(self, job_id: str) -> JobRecord | None:
        """What became of a job (one round trip); None when no queue knows it: never
        enqueued on this deployment, or finished longer than ``worker.completed_ttl`` ago
        (or pushed off the newest ``worker.completed_max``)."""
        return self.engine.record(job_id, list(self._queues.values()))

    def wait(self, job_id: str, timeout: float, poll: float = 0.05) -> JobRecord:
        """Block until the job is completed or dead and return its record. Polls, from
        ``poll`` seconds up to 0.5 s between reads. Raises TimeoutError after ``timeout``
        seconds, LookupError when the job is unknown."""
        deadline = time.monotonic() + timeout
        while True:
            record = self.get(job_id)
            if record is None:
                raise LookupError(f"no job {job_id} on this deployment")
            if record.finished:
                return record
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"job {job_id} still {record.state} after {timeout:g}s")
            time.sleep(min(poll, left))
            poll = min(poll * 1.5, 0.5)

    def stats(self) -> Stats:
        """Per priority: pending, scheduled, processing, completed, dead; live workers."""
        return Inspector(self.engine).stats(self._queues)

    # -- lifetime --------------------------------------------------------------------------

    def close(self) -> None:
        self.engine.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
