"""Admin commands as data: each returns plain values; the CLI renders them (``render``).

Every command that changes state checks its safety flags before it connects, so a refusal is
exit 2 even when Redis is down. Redis errors in the middle of a command become one line
(``RedisUnavailable``, exit 1), never a traceback.
"""

from __future__ import annotations

import base64
import json
import sys
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal

from jobqueue.client import Client, Prepared
from jobqueue.config import Settings
from jobqueue.engine import Engine, Entry, Inspector, JobRecord, RedisError, Stats
from jobqueue.engine.connection import unreachable
from jobqueue.engine.records import from_epoch_ms
from jobqueue.errors import OperationalError, UsageError
from jobqueue.job import PayloadError, json_object

PeekKind = Literal["pending", "scheduled", "completed", "dead_letter"]
PEEK_KINDS: dict[str, PeekKind] = {
    "completed": "completed",
    "dead_letter": "dead_letter",
    "dlq": "dead_letter",
    "scheduled": "scheduled",
}


@contextmanager
def session(settings: Settings) -> Iterator[Engine]:
    """An open engine for one command; Redis errors surface as one line, exit 1."""
    engine = Engine.connect(settings)
    try:
        yield engine
    except RedisError as exc:
        raise unreachable(engine.target, exc) from exc
    finally:
        engine.close()


def queue_labels(settings: Settings) -> dict[str, str]:
    """Priority -> queue name, in configured priority order."""
    return {p: settings.worker.queue_of(p) for p in settings.worker.priorities}


# -- workers and stats --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class WorkerRow:
    """One registered worker process as ``admin workers`` shows it."""

    id: str
    host: str
    pid: int | None
    started: str
    slots: int | None
    queues: list[str]
    breaker: str
    running: int  # jobs it has started (its processing lists)
    reserved: int  # jobs it claimed and has not started (prefetched)
    heartbeat_age: float | None  # seconds since the last renewal; None when unknown
    alive: bool

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "host": self.host,
            "pid": self.pid,
            "started": self.started,
            "slots": self.slots,
            "queues": self.queues,
            "breaker": self.breaker,
            "running": self.running,
            "reserved": self.reserved,
            "heartbeat_age_seconds": self.heartbeat_age,
            "alive": self.alive,
        }


def _heartbeat_age(ttl_ms: int, heartbeat_ttl: float) -> float | None:
    """Renewals reset the TTL to ``heartbeat_ttl``, so age = ttl - what is left."""
    if ttl_ms < 0:
        return None
    return round(max(0.0, heartbeat_ttl - ttl_ms / 1000), 3)


def _int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _pid(info: dict[str, Any]) -> int | None:
    return _int(info.get("pid"))


def _holding(engine: Engine, queues: list[str], worker_id: str) -> tuple[int, int]:
    """(running, reserved) over the worker's queues."""
    held = [engine.held(queue, worker_id) for queue in queues]
    return sum(len(h.processing) for h in held), sum(len(h.reserved) for h in held)


def _ttl(info: dict[str, Any], settings: Settings) -> float:
    """The worker's own heartbeat TTL when it publishes one, else this config's."""
    ttl = info.get("heartbeat_ttl")
    return float(ttl) if isinstance(ttl, int | float) and ttl > 0 else settings.worker.heartbeat_ttl


def worker_rows(engine: Engine, settings: Settings, with_jobs: bool = True) -> list[WorkerRow]:
    """Every registered worker, live or expired (awaiting the reaper), sorted by id."""
    registered = engine.registry.workers()
    ttls = engine.registry.liveness(list(registered))
    configured = list(queue_labels(settings).values())
    rows = []
    for worker_id in sorted(registered):
        info = registered[worker_id]
        queues = [str(q) for q in info.get("queues") or configured]
        running, reserved = _holding(engine, queues, worker_id) if with_jobs else (0, 0)
        rows.append(
            WorkerRow(
                id=worker_id,
                host=str(info.get("host", "")),
                pid=_pid(info),
                started=str(info.get("started", "")),
                slots=_int(info.get("slots")),
                queues=queues,
                breaker=str(info.get("breaker", "")),
                running=running,
                reserved=reserved,
                heartbeat_age=_heartbeat_age(ttls[worker_id], _ttl(info, settings)),
                alive=ttls[worker_id] != -2,
            )
        )
    return rows


def breaker_states(rows: list[WorkerRow]) -> dict[str, int]:
    """How many live worker processes are in each breaker state (one breaker each)."""
    return dict(Counter(row.breaker for row in rows if row.alive and row.breaker))


@dataclass(slots=True)
class Overview:
    """``admin stats``: queue counts plus what the worker registry says."""

    stats: Stats
    workers: list[WorkerRow] = field(default_factory=list)
    rate_limits: dict[str, float] = field(default_factory=dict)  # priority -> jobs/s

    @property
    def breakers(self) -> dict[str, int]:
        return breaker_states(self.workers)

    def throttled(self, priority: str) -> int:
        """Claims that found ``priority``'s rate limit out of tokens (since the start)."""
        return self.stats.queues[priority].counters.get("rate_limited", 0)

    def as_json(self) -> dict[str, Any]:
        limits = {
            p: {"per_second": rate, "throttled_claims": self.throttled(p)}
            for p, rate in self.rate_limits.items()
        }
        return {**self.stats.as_json(), "breakers": self.breakers, "rate_limits": limits}


def overview(engine: Engine, settings: Settings, with_jobs: bool = False) -> Overview:
    stats = Inspector(engine).stats(queue_labels(settings))
    limits = dict(settings.worker.rate_limits)
    return Overview(stats, worker_rows(engine, settings, with_jobs), limits)


def stats(settings: Settings) -> Overview:
    with session(settings) as engine:
        return overview(engine, settings)


@dataclass(frozen=True, slots=True)
class WorkersView:
    """``admin workers``: the registry, and when a reaper last swept (None: not lately)."""

    rows: list[WorkerRow]
    sweep: tuple[dict[str, Any], float] | None

    def as_json(self) -> dict[str, Any]:
        reaper = None
        if self.sweep is not None:
            info, age = self.sweep
            reaper = {"host": info.get("host"), "pid": info.get("pid"), "swept_ago_seconds": age}
        return {"workers": [row.as_json() for row in self.rows], "reaper": reaper}

    def hint(self) -> str | None:
        """What to do about expired workers that no reaper is coming for."""
        expired = sum(1 for row in self.rows if not row.alive)
        if not expired or self.sweep is not None:
            return None
        return (
            f"{expired} expired workers and no reaper has swept lately: their jobs wait until "
            "one runs (jobqueue --role=reaper), or recover them now with: jobqueue admin reap"
        )


def workers(settings: Settings) -> WorkersView:
    with session(settings) as engine:
        return workers_on(engine, settings)


def workers_on(engine: Engine, settings: Settings) -> WorkersView:
    """``workers`` on an engine the caller keeps open (the HTTP server's)."""
    return WorkersView(worker_rows(engine, settings), engine.registry.last_sweep())


# -- peek ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Peeked:
    """One peeked entry, with the priority whose queue holds it."""

    priority: str
    entry: Entry

    def payload(self) -> Any:
        """The whole payload: parsed JSON, else its text (base64 when not UTF-8)."""
        return decode_payload(self.entry.raw)

    def due(self) -> str | None:
        due = None if self.entry.due_ms is None else from_epoch_ms(self.entry.due_ms)
        return None if due is None else due.isoformat(timespec="milliseconds")

    def as_json(self, position: int) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "position": position,
            "priority": self.priority,
            "queue": self.entry.queue,
            "payload": self.payload(),
        }
        if self.entry.due_ms is not None:
            doc["due"] = self.due()
            doc["due_ms"] = self.entry.due_ms
        if not _is_utf8(self.entry.raw):
            doc["payload_encoding"] = "base64"
        return doc


@dataclass(frozen=True, slots=True)
class PeekResult:
    kind: PeekKind
    requested: str
    entries: list[Peeked]

    def as_json(self) -> dict[str, Any]:
        return {
            "queue": self.requested,
            "kind": self.kind,
            "count": len(self.entries),
            "entries": [e.as_json(i) for i, e in enumerate(self.entries, 1)],
        }


def _is_utf8(raw: bytes) -> bool:
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def decode_payload(raw: bytes) -> Any:
    if not _is_utf8(raw):
        return base64.b64encode(raw).decode("ascii")
    text = raw.decode("utf-8")
    try:
        return json.loads(text)
    except (ValueError, RecursionError):  # not JSON, or nested deeper than the parser goes
        return text


def resolve_peek(settings: Settings, queue: str) -> tuple[PeekKind, dict[str, str]]:
    """``--queue`` -> (kind, priority -> queue name). A priority or a queue name means its
    pending list; completed, dead_letter|dlq and scheduled span every priority's queue."""
    labels = queue_labels(settings)
    if queue in PEEK_KINDS:
        return PEEK_KINDS[queue], labels
    for priority, name in labels.items():
        if queue in (priority, name):
            return "pending", {priority: name}
    known = ", ".join([*labels, *PEEK_KINDS])
    raise UsageError(f"--queue {queue!r} is not one of: {known}")


def _peek_one(inspector: Inspector, kind: PeekKind, queue: str, n: int) -> list[Entry]:
    readers = {
        "pending": inspector.peek_pending,
        "scheduled": inspector.peek_scheduled,
        "completed": inspector.peek_completed,
        "dead_letter": inspector.peek_dead,
    }
    return readers[kind](queue, n)


def peek(settings: Settings, queue: str, n: int) -> PeekResult:
    """The next ``n`` entries of each queue the ``--queue`` value names, in that queue's
    order (claim order; due time; most recent completion first; oldest dead first)."""
    if n < 1:
        raise UsageError("--n must be at least 1")
    resolve_peek(settings, queue)  # a bad --queue is refused before connecting
    with session(settings) as engine:
        return peek_with(engine, settings, queue, n)


def peek_with(engine: Engine, settings: Settings, queue: str, n: int) -> PeekResult:
    """``peek`` on an engine the caller keeps open (a screen that samples every second)."""
    kind, labels = resolve_peek(settings, queue)
    inspector = Inspector(engine)
    entries = [
        Peeked(priority, entry)
        for priority, name in labels.items()
        for entry in _peek_one(inspector, kind, name, n)
    ]
    return PeekResult(kind, queue, entries)


NEWEST_DEAD_READ_MAX = 1000  # the dead-letter list is read from its oldest end: this many


def newest(
    engine: Engine,
    settings: Settings,
    kind: Literal["completed", "dead_letter"],
    counts: dict[str, int],
) -> list[Peeked]:
    """The newest ``counts[priority]`` entries of each priority's completed or dead-letter
    list, newest first: what finished since a caller last looked (the HTTP server's event
    stream). The engine reads a dead-letter list from its oldest end, so one of more than
    NEWEST_DEAD_READ_MAX entries gives none (the caller still has the counts)."""
    inspector = Inspector(engine)
    found: list[Peeked] = []
    for priority, name in queue_labels(settings).items():
        count = counts.get(priority, 0)
        if count < 1:
            continue
        if kind == "completed":
            entries = inspector.peek_completed(name, count)
        else:
            oldest_first = inspector.peek_dead(name, NEWEST_DEAD_READ_MAX)
            whole = len(oldest_first) < NEWEST_DEAD_READ_MAX
            entries = oldest_first[::-1][:count] if whole else []
        found += [Peeked(priority, entry) for entry in entries]
    return found


def held_job_ids(engine: Engine, row: WorkerRow) -> list[str]:
    """The ids of the jobs a worker holds, running ones first, then the reserved ones
    (an entry that is not a job shows as ``?``)."""
    held = [engine.held(queue, row.id) for queue in row.queues]
    raws = [raw for h in held for raw in h.processing] + [raw for h in held for raw in h.reserved]
    return [str(json_object(raw).get("id", "?")) for raw in raws]


@dataclass(frozen=True, slots=True)
class ServerInfo:
    """What a status line says about the Redis server (``INFO server`` and ``memory``);
    on a Cluster, the first node's."""

    version: str
    used_memory: int  # bytes


def server_info(engine: Engine) -> ServerInfo:
    """Redis' version and memory use (every ACL user of deploy/redis/acl.conf has INFO)."""
    info = Inspector(engine).server_info()
    return ServerInfo(str(info.get("redis_version", "?")), int(info.get("used_memory", 0)))


# -- repairs ------------------------------------------------------------------------------


@dataclass(slots=True)
class RequeueReport:
    """Per priority: dead jobs moved back, malformed entries skipped, entries left."""

    moved: dict[str, int] = field(default_factory=dict)
    skipped: dict[str, int] = field(default_factory=dict)
    remaining: dict[str, int] = field(default_factory=dict)
    dry_run: bool = False  # then ``moved`` is what would move (malformed entries aside)

    def as_json(self) -> dict[str, Any]:
        return {
            "dry_run": self.dry_run,
            "moved": sum(self.moved.values()),
            "skipped": sum(self.skipped.values()),
            "remaining": sum(self.remaining.values()),
            "queues": {
                p: {"moved": m, "skipped": self.skipped[p], "remaining": self.remaining[p]}
                for p, m in self.moved.items()
            },
        }


def stats_keys(settings: Settings) -> dict[str, Any]:
    """SCAN census of this namespace: key count by type and kind, memory sampled."""
    with session(settings) as engine:
        census = Inspector(engine).census()
    return {"namespace": settings.redis.namespace, **census}


# -- one job ------------------------------------------------------------------------------


def job(settings: Settings, job_id: str) -> JobRecord:
    """What became of job ``job_id`` (its record), or OperationalError when no queue knows
    it."""
    with session(settings) as engine:
        found = engine.record(job_id, list(queue_labels(settings).values()))
    if found is None:
        raise OperationalError(
            f"no job {job_id!r}: never enqueued on this Redis and namespace, or finished more "
            f"than worker.completed_ttl ({settings.worker.completed_ttl:g}s) ago, or pushed "
            "off the newest worker.completed_max"
        )
    return found


# -- jobs that are not files --------------------------------------------------------------

NDJSON_BATCH = 500  # jobs per round trip when reading standard input


def enqueue_jobs(
    settings: Settings,
    paths: list[str],
    payload: str | None,
    kind: str,
    priority: str | None,
    delay: float,
) -> dict[str, Any]:
    """``admin enqueue --payload/--kind`` (one job) or ``admin enqueue -`` (NDJSON on stdin):
    every job is checked before any is sent; returns enqueued and duplicates (ids or
    idempotency keys already known) and the ids enqueued."""
    if paths not in ([], ["-"]):
        raise UsageError("--payload and --kind make one job that is not a file: leave out PATH")
    if paths == ["-"]:
        if payload is not None or kind:
            raise UsageError("with PATH -, each line gives its payload and kind")
        specs = [(f"stdin line {n}", _ndjson_line(n, line)) for n, line in enumerate(sys.stdin, 1)]
    else:
        specs = [("--payload", {"payload": _json_option(payload), "kind": kind})]
    client = Client(settings=settings)
    try:
        prepared = [_prepare(client, where, spec, priority) for where, spec in specs if spec]
        accepted: list[bool] = []
        for start in range(0, len(prepared), NDJSON_BATCH):
            accepted += client.send(prepared[start : start + NDJSON_BATCH], delay=delay)
    except RedisError as exc:
        raise unreachable(client.engine.target, exc) from exc
    finally:
        client.close()
    ids = [p.id for p, ok in zip(prepared, accepted, strict=True) if ok]
    return {"enqueued": len(ids), "duplicates": len(accepted) - len(ids), "ids": ids}


def _prepare(client: Client, where: str, spec: dict[str, Any], priority: str | None) -> Prepared:
    """Check one job before anything is sent; a bad one names where it came from."""
    try:
        return client.prepare({"priority": priority, **spec})
    except (UsageError, PayloadError) as exc:
        raise UsageError(f"{where}: {exc}") from None


def _json_option(text: str | None) -> Any:
    if text is None:
        return None
    try:
        return json.loads(text)
    except ValueError as exc:
        raise UsageError(f"--payload: not JSON: {exc}") from None


def _ndjson_line(number: int, line: str) -> dict[str, Any] | None:
    if not line.strip():
        return None
    try:
        spec = json.loads(line)
    except ValueError as exc:
        raise UsageError(f"stdin line {number}: not JSON: {exc}") from None
    if not isinstance(spec, dict):
        raise UsageError(f"stdin line {number}: expected a JSON object, got {line.strip()[:60]}")
    return spec
