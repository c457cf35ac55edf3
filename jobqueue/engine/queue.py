"""The queue engine: every state change of a job, each one atomic and one round trip.

Roles never touch Redis themselves; they call these methods. Transitions after the claim are
fenced on the exact payload the worker claimed: a job that was reaped, released or settled
elsewhere is no longer in this worker's processing list, so a late ack or retry finds nothing
and returns False instead of recording the job twice.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, cast

import redis
from redis.exceptions import NoScriptError, RedisClusterException

from jobqueue.config import Settings, WorkerConfig
from jobqueue.engine.connection import (
    RedisClient,
    Target,
    make_client,
    resolve_target,
    unreachable,
)
from jobqueue.engine.keys import KeySchema, QueueKeys
from jobqueue.engine.scripts import Scripts
from jobqueue.job import (
    Claimed,
    Job,
    PayloadError,
    dead_entry_for_job,
    dead_entry_for_raw,
    is_raw_dead_entry,
    parse_job,
)

# Everything a Redis call can raise. redis-py's cluster client raises RedisClusterException
# (not a RedisError) when no node answers: without it here a Cluster outage would kill loops.
RedisError = (redis.RedisError, RedisClusterException)
ConnectionLost = (redis.ConnectionError, redis.TimeoutError, RedisClusterException)
Outcome = Literal["retried", "dead", "fenced"]


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How many attempts a job gets and how long it waits between them."""

    max_retries: int
    base: float
    cap: float

    @classmethod
    def from_config(cls, worker: WorkerConfig) -> RetryPolicy:
        return cls(worker.max_retries, worker.backoff.base, worker.backoff.max)

    def backoff(self, retries: int) -> float:
        """Full jitter: uniform in [0, min(cap, base * 2^(retries-1))] seconds."""
        ceiling = min(self.cap, self.base * (2 ** max(retries - 1, 0)))
        return random.uniform(0, ceiling)

    def exhausted(self, retries: int) -> bool:
        return retries > self.max_retries


@dataclass(slots=True)
class ReapResult:
    requeued: int = 0
    dead: int = 0
    jobs: list[tuple[str, str]] = field(default_factory=list)  # (queue, job id) recovered


@dataclass(frozen=True, slots=True)
class EngineLimits:
    completed_max: int = 10_000
    dedupe_ttl: float = 7 * 86400.0
    max_payload_bytes: int = 1 << 20


DEAD_PAGE = 500  # dead-letter entries read per round trip by requeue_dead


def _ms(seconds: float) -> int:
    return max(0, round(seconds * 1000))


class Engine:
    """All queue operations for one namespace on one Redis deployment."""

    def __init__(
        self,
        client: RedisClient,
        keys: KeySchema,
        limits: EngineLimits | None = None,
        blocking_client: RedisClient | None = None,
        target: Target | None = None,
    ) -> None:
        self.client = client
        self.blocking_client = blocking_client or client
        self.keys = keys
        self.limits = limits or EngineLimits()
        self.target = target or Target("redis", "redis")
        self.scripts = Scripts(client)

    @classmethod
    def from_settings(cls, settings: Settings) -> Engine:
        target = resolve_target(settings.redis)
        worker = settings.worker
        threads = worker.count + 8  # every slot, plus heartbeat, promoter, reaper, sampler...
        return cls(
            make_client(settings.redis, target, min_connections=threads),
            KeySchema(settings.redis.namespace),
            EngineLimits(
                worker.completed_max, settings.producer.dedupe_ttl, worker.max_payload_bytes
            ),
            blocking_client=make_client(
                settings.redis, target, worker.claim_timeout + 1, min_connections=threads
            ),
            target=target,
        )

    @classmethod
    def connect(cls, settings: Settings) -> Engine:
        """An engine whose Redis answered a PING, or RedisUnavailable with one clear line."""
        engine = cls.from_settings(settings)
        try:
            engine.ping()
        except BaseException:
            engine.close()
            raise
        return engine

    def ping(self) -> None:
        """Raise RedisUnavailable (one clear line) unless Redis answers."""
        try:
            self.client.ping()
        except RedisError as exc:
            raise unreachable(self.target, exc) from exc

    def close(self) -> None:
        self.client.close()
        if self.blocking_client is not self.client:
            self.blocking_client.close()

    # -- producing ---------------------------------------------------------------------

    def _enqueue_args(self, job: Job, queue: str, delay: float) -> tuple[list[str], list[Any]]:
        payload = job.to_json()  # serialized once: it is checked and sent as these bytes
        if len(payload) > self.limits.max_payload_bytes:
            raise PayloadError(f"job {job.id} exceeds max_payload_bytes")
        q = self.keys.queue(queue)
        keys = [q.pending, q.scheduled, q.stats]
        if job.idempotency_key:
            keys.append(q.idempotency(job.idempotency_key))
        return keys, [payload, _ms(delay), _ms(self.limits.dedupe_ttl)]

    def enqueue(self, job: Job, queue: str, delay: float = 0.0) -> bool:
        """Add a job (after ``delay`` seconds); False if its idempotency key is live or done."""
        keys, args = self._enqueue_args(job, queue, delay)
        return bool(self.scripts["enqueue"](keys=keys, args=args))

    def enqueue_many(self, items: Sequence[tuple[Job, str]], delay: float = 0.0) -> list[bool]:
        """Enqueue a batch in one pipelined round trip (one per shard on a Cluster); one flag
        per job as in ``enqueue``."""
        calls = [self._enqueue_args(job, queue, delay) for job, queue in items]
        return [bool(flag) for flag in self._pipelined("enqueue", calls)]

    def _pipelined(self, name: str, calls: Sequence[tuple[list[str], list[Any]]]) -> list[Any]:
        """Run one script once per (keys, args) in a pipeline; the replies in order.

        EVALSHA is sent as a raw command because redis-py refuses Script objects in a Cluster
        pipeline. A NOSCRIPT reply (a node that never saw the script: SCRIPT FLUSH, a restart,
        a promoted replica) loads the script (on every primary of a Cluster) and reruns only
        those calls: a NOSCRIPT call did nothing, so nothing runs twice.
        """
        script = self.scripts[name]
        replies: list[Any] = [None] * len(calls)
        todo = list(range(len(calls)))
        for attempt in range(2):
            pipe = self.client.pipeline(transaction=False)
            for i in todo:
                keys, args = calls[i]
                pipe.execute_command("EVALSHA", script.sha, len(keys), *keys, *args)
            missing = []
            for i, reply in zip(todo, pipe.execute(raise_on_error=False), strict=True):
                if isinstance(reply, NoScriptError) and attempt == 0:
                    missing.append(i)
                elif isinstance(reply, Exception):
                    raise reply
                else:
                    replies[i] = reply
            if not missing:
                break
            self.client.script_load(script.script)
            todo = missing
        return replies

    def take_tokens(self, rate: float, burst: int, tokens: int = 1) -> float:
        """Take tokens from the shared bucket; 0.0 if taken, else seconds to wait first."""
        wait_us = self.scripts["take_token"](
            keys=[self.keys.rate_limit], args=[repr(float(rate)), burst, tokens]
        )
        return int(wait_us) / 1_000_000

    def pending_length(self, queue: str) -> int:
        return int(self.client.llen(self.keys.queue(queue).pending))

    # -- consuming -----------------------------------------------------------------------

    def claim(self, queue: str, worker_id: str, limit: int) -> list[bytes]:
        """Move up to ``limit`` jobs into the worker's processing list; never blocks."""
        q = self.keys.queue(queue)
        return list(self.scripts["claim"](keys=[q.pending, q.processing(worker_id)], args=[limit]))

    def claim_blocking(self, queue: str, worker_id: str, timeout: float) -> bytes | None:
        """BLMOVE one job into the worker's processing list, waiting up to ``timeout``."""
        q = self.keys.queue(queue)
        payload = self.blocking_client.execute_command(  # type: ignore[no-untyped-call]
            "BLMOVE", q.pending, q.processing(worker_id), "RIGHT", "LEFT", timeout
        )
        return cast("bytes | None", payload)

    def held(self, queue: str, worker_id: str) -> list[bytes]:
        """What the worker's processing list holds (adopted after a connection error)."""
        raw = self.client.lrange(self.keys.queue(queue).processing(worker_id), 0, -1)
        return cast("list[bytes]", raw)[::-1]

    def decode(self, queue: str, raw: bytes) -> Claimed:
        """Parse a claimed payload; a bad one is returned with its error, never raised."""
        try:
            return Claimed(queue, raw, parse_job(raw, self.limits.max_payload_bytes))
        except PayloadError as exc:
            return Claimed(queue, raw, None, str(exc))

    def done_flags(self, queue: str, idempotency_keys: Sequence[str]) -> list[bool]:
        """Which of these idempotency keys are already marked done (one MGET)."""
        q = self.keys.queue(queue)
        values = self.client.mget([q.idempotency(k) for k in idempotency_keys])
        return [value == b"done" for value in values]

    def ack(self, queue: str, worker_id: str, jobs: Sequence[Claimed]) -> list[bool]:
        """Record jobs as completed, fenced; marks their idempotency keys done."""
        if not jobs:
            return []
        q = self.keys.queue(queue)
        keys = [q.processing(worker_id), q.completed, q.stats]
        args: list[Any] = [self.limits.completed_max, _ms(self.limits.dedupe_ttl)]
        for claimed in jobs:
            idem = claimed.job.idempotency_key if claimed.job else ""
            if idem:
                keys.append(q.idempotency(idem))
            args += [claimed.raw, len(keys) if idem else 0]
        return [bool(flag) for flag in self.scripts["ack"](keys=keys, args=args)]

    def fail(self, claimed: Claimed, worker_id: str, error: str, policy: RetryPolicy) -> Outcome:
        """Schedule a retry with backoff, or dead-letter the job once out of retries."""
        if claimed.job is None:
            return self.bury(claimed, worker_id, claimed.error or error)
        failed = claimed.job.with_failure(error)
        if policy.exhausted(failed.retries):
            reason = f"out of retries ({policy.max_retries}): {error}"
            return self._bury_entry(claimed, worker_id, dead_entry_for_job(failed, reason))
        q = self.keys.queue(claimed.queue)
        moved = self.scripts["retry"](
            keys=[q.processing(worker_id), q.scheduled, q.stats],
            args=[claimed.raw, failed.to_json(), _ms(policy.backoff(failed.retries))],
        )
        return "retried" if moved else "fenced"

    def bury(self, claimed: Claimed, worker_id: str, reason: str) -> Outcome:
        """Dead-letter a claimed job at once (malformed, oversized, or forbidden)."""
        if claimed.job is None:
            entry = dead_entry_for_raw(claimed.raw, claimed.queue, reason)
        else:
            entry = dead_entry_for_job(claimed.job, reason)
        return self._bury_entry(claimed, worker_id, entry)

    def _bury_entry(self, claimed: Claimed, worker_id: str, entry: bytes) -> Outcome:
        q = self.keys.queue(claimed.queue)
        moved = self.scripts["bury"](
            keys=[q.processing(worker_id), q.dead, q.stats], args=[claimed.raw, entry]
        )
        return "dead" if moved else "fenced"

    def release(self, queue: str, worker_id: str, raws: Sequence[bytes]) -> int:
        """Give jobs back to the head of their queue without counting an attempt."""
        if not raws:
            return 0
        q = self.keys.queue(queue)
        return int(
            self.scripts["release"](
                keys=[q.processing(worker_id), q.pending, q.stats], args=list(raws)
            )
        )

    def promote(self, queue: str, limit: int = 500) -> int:
        """Move due scheduled jobs to their queue; returns how many moved."""
        q = self.keys.queue(queue)
        return int(self.scripts["promote"](keys=[q.scheduled, q.pending, q.stats], args=[limit]))

    # -- recovery ------------------------------------------------------------------------

    def reap(self, worker_id: str, queues: Iterable[str], policy: RetryPolicy) -> ReapResult:
        """Recover every job a dead worker held: back to its queue as one more attempt, or to
        the dead-letter list when that was its last. Safe against racing reapers."""
        result = ReapResult()
        for queue in queues:
            q = self.keys.queue(queue)
            args: list[bytes | str] = []
            for raw in self.held(queue, worker_id):
                successor, destination, job_id = self._successor(
                    queue, raw, policy, f"reaped: worker {worker_id} died holding it"
                )
                args += [raw, successor, destination]
                result.jobs.append((queue, job_id))
            if args:
                requeued, dead = self.scripts["reap"](
                    keys=[q.processing(worker_id), q.pending, q.dead, q.stats], args=args
                )
                result.requeued += int(requeued)
                result.dead += int(dead)
        return result

    def _successor(
        self, queue: str, raw: bytes, policy: RetryPolicy, reason: str
    ) -> tuple[bytes, str, str]:
        claimed = self.decode(queue, raw)
        if claimed.job is None:
            return dead_entry_for_raw(raw, queue, claimed.error), "d", "(malformed)"
        failed = claimed.job.with_failure(reason)
        if policy.exhausted(failed.retries):
            return dead_entry_for_job(failed, f"out of retries: {reason}"), "d", failed.id
        return failed.to_json(), "p", failed.id

    def requeue_dead(self, queue: str, limit: int | None) -> tuple[int, int]:
        """Send up to ``limit`` (None: all) dead jobs back, oldest first, attempts reset.

        Returns (moved, skipped). Raw malformed entries are skipped (they would only die
        again) and stay where they are, so the search pages past them: a malformed entry at
        the old end never hides the movable jobs behind it.
        """
        q = self.keys.queue(queue)
        moved = staying = skipped = 0
        while limit is None or moved < limit:
            first = -(staying + DEAD_PAGE)
            page = cast("list[bytes]", self.client.lrange(q.dead, first, -(staying + 1)))
            if not page:
                break
            args: list[bytes] = []
            for entry in reversed(page):  # oldest first
                if limit is not None and len(args) // 2 == limit - moved:
                    break
                job = _job_from_dead_entry(entry)
                if job is None:
                    skipped += 1
                    staying += 1
                else:
                    args += [entry, job.reset_for_requeue().to_json()]
            if args:
                moved += int(
                    self.scripts["requeue_dead"](keys=[q.dead, q.pending, q.stats], args=args)
                )
            elif len(page) < DEAD_PAGE:
                break
        return moved, skipped

    # -- worker registry -----------------------------------------------------------------

    def register(self, worker_id: str, info: dict[str, Any], ttl: float) -> None:
        self.scripts["register"](
            keys=[self.keys.heartbeat(worker_id), self.keys.registry],
            args=[worker_id, json.dumps(info), _ms(ttl)],
        )

    def renew(self, worker_ids: Sequence[str], ttl: float) -> list[bool]:
        """PEXPIRE every heartbeat in one round trip (accepted even at maxmemory).

        False for a worker whose heartbeat had already expired: it must re-register.
        """
        pipe = self.client.pipeline(transaction=False)
        for worker_id in worker_ids:
            pipe.pexpire(self.keys.heartbeat(worker_id), _ms(ttl))
        return [bool(ok) for ok in pipe.execute()]

    def deregister(self, worker_id: str, by_self: bool) -> bool:
        return bool(
            self.scripts["deregister"](
                keys=[self.keys.heartbeat(worker_id), self.keys.registry],
                args=[worker_id, "1" if by_self else "0"],
            )
        )

    def registered_workers(self) -> dict[str, dict[str, Any]]:
        raw = cast("dict[bytes, bytes]", self.client.hgetall(self.keys.registry))
        return {k.decode(): _loads_object(v) for k, v in raw.items()}

    def liveness(self, worker_ids: Sequence[str]) -> dict[str, int]:
        """Milliseconds left on each worker's heartbeat; -2 when it has expired."""
        pipe = self.client.pipeline(transaction=False)
        for worker_id in worker_ids:
            pipe.pttl(self.keys.heartbeat(worker_id))
        return {w: int(ttl) for w, ttl in zip(worker_ids, pipe.execute(), strict=True)}

    def dead_workers(self) -> dict[str, list[str]]:
        """Registered workers whose heartbeat has expired, with the queues they served."""
        registered = self.registered_workers()
        ttls = self.liveness(list(registered))
        return {w: list(info.get("queues", [])) for w, info in registered.items() if ttls[w] == -2}

    def queue_keys(self, queue: str) -> QueueKeys:
        return self.keys.queue(queue)


def _loads_object(raw: bytes) -> dict[str, Any]:
    try:
        value = json.loads(raw)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _job_from_dead_entry(entry: bytes) -> Job | None:
    data = _loads_object(entry)
    if not data or is_raw_dead_entry(data):
        return None
    data.pop("dead_time", None)
    try:
        return Job.model_validate(data)
    except ValueError:
        return None
