"""The queue engine: every state change of a job, each one atomic, fenced and one script.

Roles never touch Redis themselves; they call these methods, or gather several transitions
into one round trip with :meth:`Engine.batch`. Transitions after the claim are fenced on the
exact payload the worker claimed: a job that was reaped, released or settled elsewhere is no
longer in this worker's list, so a late ack or retry finds nothing and returns False instead
of recording the job twice.

Nothing here is resent by the Redis client on a timeout (see connection.py). Methods that are
safe to run twice say so and repeat themselves (``redis.max_retries``); a caller of ``claim``
or of ``enqueue`` without an idempotency key that sees a ConnectionLost does not know whether
the call ran, and must reconcile (a worker re-reads its own lists with ``held``).
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast

import redis
from redis.exceptions import RedisClusterException, ResponseError
from redis.retry import Retry

from jobqueue.config import Settings, WorkerConfig
from jobqueue.engine.batch import Batch, Call, Outcome, ms
from jobqueue.engine.connection import (
    Outage,
    RedisClient,
    Target,
    make_client,
    repeat_policy,
    resolve_target,
    unreachable,
)
from jobqueue.engine.keys import KeySchema, QueueKeys
from jobqueue.engine.records import JobRecord
from jobqueue.engine.registry import Registry
from jobqueue.engine.scripts import Scripts
from jobqueue.job import (
    Claimed,
    Job,
    PayloadError,
    dead_entry_for_job,
    dead_entry_for_raw,
    job_from_dead_entry,
    parse_job,
)

# Everything a Redis call can raise. redis-py's cluster client raises RedisClusterException
# (not a RedisError) when no node answers: without it here a Cluster outage would kill loops.
RedisError = (redis.RedisError, RedisClusterException)
ConnectionLost = (redis.ConnectionError, redis.TimeoutError, RedisClusterException)
T = TypeVar("T")

# 2**62 seconds is past any cap; the exponent stops there instead of overflowing a float.
_MAX_EXPONENT = 62


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
        """Full jitter (AWS Architecture Blog, "Exponential Backoff And Jitter"): uniform in
        [0, min(cap, base * 2^(retries-1))] seconds, for any number of retries."""
        exponent = min(max(retries - 1, 0), _MAX_EXPONENT)
        return random.uniform(0, min(self.cap, self.base * float(2**exponent)))

    def exhausted(self, retries: int) -> bool:
        return retries > self.max_retries


@dataclass(slots=True)
class ReapResult:
    """What one reap moved, counted from the script's own replies (racing reapers each count
    only what they moved)."""

    requeued: int = 0
    dead: int = 0
    released: int = 0
    complete: bool = True  # every list of the worker is empty now; it may be deregistered
    jobs: list[tuple[str, str]] = field(default_factory=list)  # (queue, job id) charged
    per_queue: Counter[str] = field(default_factory=Counter)  # jobs moved, charged or not

    def count(self, queue: str, job_id: str, dead: bool) -> None:
        self.jobs.append((queue, job_id))
        self.per_queue[queue] += 1
        if dead:
            self.dead += 1
        else:
            self.requeued += 1


@dataclass(frozen=True, slots=True)
class Held:
    """What a worker's two lists on one queue hold, oldest first."""

    reserved: list[bytes]
    processing: list[bytes]

    def __bool__(self) -> bool:
        return bool(self.reserved or self.processing)


@dataclass(frozen=True, slots=True)
class EngineLimits:
    completed_max: int = 10_000
    dedupe_ttl: float = 7 * 86400.0
    max_payload_bytes: int = 1 << 20
    wait_replicas: int = 0  # replicas an enqueue or ack waits for (Redis WAIT); 0: none
    wait_timeout: float = 1.0  # seconds WAIT waits for them
    completed_ttl: float = 86400.0  # seconds a finished job's record is kept
    # queue -> (jobs per second fleet-wide, burst): worker.rate_limits
    rates: Mapping[str, tuple[float, int]] = field(default_factory=dict)


ENQUEUE_PAGE = 1000  # jobs per enqueue script call: each call stays short (a few ms)
Outgoing = tuple[bytes, str, str]  # a serialized job, its idempotency key ('': none), its queue
DEAD_PAGE = 500  # dead-letter entries read per round trip by requeue_dead
REAP_PAGE = 200  # started jobs one reap call moves: each call stays short (a few ms)
REAP_FUTILE = 5  # reap calls in a row that moved nothing (raced) before a reap gives up


class EnqueueRefused(ResponseError):
    """Redis refused some jobs of an ``enqueue_many`` (at maxmemory with noeviction, say)
    and took the others: ``accepted`` has one entry per job, True (enqueued), False (its
    idempotency key was live or done) or None (refused: not enqueued). A ResponseError, so
    code that handles Redis errors handles it; code that can use the detail does."""

    def __init__(self, message: str, accepted: list[bool | None]) -> None:
        super().__init__(message)
        self.accepted = accepted


class Engine:
    """All queue operations for one namespace on one Redis deployment."""

    def __init__(
        self,
        client: RedisClient,
        keys: KeySchema,
        limits: EngineLimits | None = None,
        blocking_client: RedisClient | None = None,
        target: Target | None = None,
        repeat: Retry | None = None,
    ) -> None:
        self.client = client
        self.blocking_client = blocking_client or client
        self.keys = keys
        self.limits = limits or EngineLimits()
        self.target = target or Target("redis", "redis")
        self.scripts = Scripts(client)
        self._repeat = repeat or Retry(redis.backoff.NoBackoff(), 0)
        self.registry = Registry(self)
        self.outage = Outage(self.target.display)  # this process's loops report Redis trouble

    @classmethod
    def from_settings(cls, settings: Settings) -> Engine:
        target = resolve_target(settings.redis)
        worker = settings.worker
        threads = worker.count + 8  # every slot, plus hub, wakers, keeper, promoter, reaper...
        return cls(
            make_client(settings.redis, target, min_connections=threads),
            KeySchema(settings.redis.namespace),
            EngineLimits(
                worker.completed_max,
                settings.producer.dedupe_ttl,
                worker.max_payload_bytes,
                settings.redis.wait_replicas,
                settings.redis.wait_timeout,
                worker.completed_ttl,
                worker.rates(),
            ),
            blocking_client=make_client(
                settings.redis, target, worker.claim_timeout + 1, min_connections=threads
            ),
            target=target,
            repeat=repeat_policy(settings.redis),
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
            self.repeat(self.client.ping)
        except RedisError as exc:
            raise unreachable(self.target, exc) from exc

    def eviction_policy(self) -> str | None:
        """Redis' ``maxmemory-policy`` (INFO memory), or None when this user may not read it.

        Any policy but ``noeviction`` lets Redis delete queue keys when memory runs short:
        jobs then vanish without an error anywhere (BullMQ and Sidekiq warn about it too).
        On a Cluster every primary is asked, and the first policy that is not noeviction is
        returned."""
        try:
            info: dict[str, Any] = self.repeat(lambda: self.client.info("memory"))
        except ResponseError:  # NOPERM: an ACL user without INFO
            return None
        nodes = [v for v in info.values() if isinstance(v, dict)] or [info]
        policies = [str(node.get("maxmemory_policy", "")) for node in nodes]
        return next((p for p in policies if p != "noeviction"), policies[0] if policies else None)

    def close(self) -> None:
        self.client.close()
        if self.blocking_client is not self.client:
            self.blocking_client.close()

    def repeat(self, operation: Callable[[], T]) -> T:
        """Run an operation that is safe to run twice, again after a lost connection."""
        return self._repeat.call_with_retry(operation, lambda _error: None)

    def batch(self) -> Batch:
        """Transitions to send together in one round trip (see batch.py)."""
        return Batch(self)

    def _one(self, build: Callable[[Batch], Any]) -> Any:
        batch = self.batch()
        call = build(batch)
        batch.execute()
        return call.value

    def queue_keys(self, queue: str) -> QueueKeys:
        return self.keys.queue(queue)

    # -- producing ---------------------------------------------------------------------

    def _serialized(self, job: Job) -> bytes:
        payload = job.to_json()  # serialized once: it is checked and sent as these bytes
        if len(payload) > self.limits.max_payload_bytes:
            raise PayloadError(f"job {job.id} exceeds max_payload_bytes")
        return payload

    def enqueue(self, job: Job, queue: str, delay: float = 0.0, dedupe_id: bool = False) -> bool:
        """Add a job (after ``delay`` seconds); False if its idempotency key is live or done,
        or (``dedupe_id``) if a job with its id is known (its record exists: queued, running,
        or finished within ``worker.completed_ttl``). Not repeated after a lost connection."""
        jobs = [(self._serialized(job), job.idempotency_key)]
        return bool(self._one(lambda b: b.enqueue(queue, jobs, delay, dedupe_id))[0])

    def enqueue_many(
        self, items: Sequence[tuple[Job, str]], delay: float = 0.0, dedupe_id: bool = False
    ) -> list[bool]:
        """``enqueue_serialized`` for jobs and their queues."""
        return self.enqueue_serialized(
            [(self._serialized(job), job.idempotency_key, queue) for job, queue in items],
            delay,
            dedupe_id,
        )

    def enqueue_serialized(
        self, items: Sequence[Outgoing], delay: float = 0.0, dedupe_id: bool = False
    ) -> list[bool]:
        """Enqueue a batch in one pipelined round trip (one per shard on a Cluster): one
        script call per queue and ENQUEUE_PAGE jobs; one flag per job as in ``enqueue``.
        ``items`` are jobs already serialized and checked (``Job.to_json``, at most
        ``max_payload_bytes``): a caller that measured the bytes sends those bytes.
        Raises EnqueueRefused, saying which went in, when Redis refused some of the calls
        (maxmemory: a call is refused whole, before it writes): never a success for a job
        that was not kept."""
        positions: dict[str, list[int]] = {}
        for index, (_, _, queue) in enumerate(items):
            positions.setdefault(queue, []).append(index)
        batch = self.batch()
        calls: list[tuple[list[int], Call[list[bool]]]] = []
        for queue, indexes in positions.items():
            for start in range(0, len(indexes), ENQUEUE_PAGE):
                page = indexes[start : start + ENQUEUE_PAGE]
                jobs = [(items[i][0], items[i][1]) for i in page]
                calls.append((page, batch.enqueue(queue, jobs, delay, dedupe_id)))
        accepted: list[bool | None] = [None] * len(items)
        try:
            batch.execute()
        except ResponseError as exc:  # some calls were refused (maxmemory...), others went in
            refused = sum(len(page) for page, call in calls if not call.done)
            for page, call in calls:
                for index, flag in zip(page, call.value if call.done else [], strict=False):
                    accepted[index] = flag
            raise EnqueueRefused(
                f"{refused} of {len(items)} jobs refused: {exc}", accepted
            ) from exc
        for page, call in calls:
            for index, flag in zip(page, call.value, strict=True):
                accepted[index] = flag
        return [bool(flag) for flag in accepted]

    def take_tokens(self, rate: float, burst: int, tokens: int = 1) -> float:
        """Take tokens from the shared bucket; 0.0 if taken, else seconds to wait first."""
        wait_us = self.scripts["take_token"](
            keys=[self.keys.rate_limit], args=[repr(float(rate)), burst, tokens]
        )
        return int(wait_us) / 1_000_000

    def pending_length(self, queue: str) -> int:
        return int(self.repeat(lambda: self.client.llen(self.keys.queue(queue).pending)))

    def promote(self, queue: str, limit: int = 500) -> int:
        """Move due scheduled jobs to their queue; returns how many moved. Safe to repeat."""
        return int(self.repeat(lambda: self._one(lambda b: b.promote(queue, limit))))

    # -- a worker's jobs (one at a time; the worker's hub batches them) ---------------------

    def claim(
        self, queue: str, worker_id: str, limit: int, min_lease: float = 0.001
    ) -> list[bytes] | None:
        """Reserve up to ``limit`` jobs (fewer, or none, when the queue's rate limit says
        so); None without a lease. Never blocks, never repeated."""
        reply = self._one(lambda b: b.claim(queue, worker_id, limit, min_lease))
        return None if reply is None else cast("list[bytes]", reply.jobs)

    def start(self, queue: str, worker_id: str, raws: Sequence[bytes]) -> list[bool]:
        return cast("list[bool]", self._one(lambda b: b.start(queue, worker_id, raws)))

    def ack(self, queue: str, worker_id: str, jobs: Sequence[Claimed]) -> list[bool]:
        if not jobs:
            return []
        return cast("list[bool]", self._one(lambda b: b.ack(queue, worker_id, jobs)))

    def fail(self, claimed: Claimed, worker_id: str, error: str, policy: RetryPolicy) -> Outcome:
        return cast("Outcome", self._one(lambda b: b.fail(claimed, worker_id, error, policy)))

    def bury(self, claimed: Claimed, worker_id: str, reason: str) -> Outcome:
        return cast("Outcome", self._one(lambda b: b.bury(claimed, worker_id, reason)))

    def release(
        self, queue: str, worker_id: str, raws: Sequence[bytes], started: bool = False
    ) -> int:
        if not raws:
            return 0
        return int(self._one(lambda b: b.release(queue, worker_id, raws, started)))

    def wait_for_jobs(self, queue: str, timeout: float) -> bool:
        """Block until ``queue`` has a job or ``timeout`` seconds pass; True if it has one.

        ``BLMOVE pending pending RIGHT RIGHT`` pops the job at the claim end and pushes it
        straight back there: the list is unchanged, nothing is ever out of it, and the wait is
        level-triggered (no notification can be missed). The claim itself stays a fenced
        script: a blocking move into a worker's own list could land after a reaper gave the
        list up, where no lease check can run.
        """
        pending = self.keys.queue(queue).pending
        reply = self.blocking_client.execute_command(  # type: ignore[no-untyped-call]
            "BLMOVE", pending, pending, "RIGHT", "RIGHT", timeout
        )
        return reply is not None

    def record(self, job_id: str, queues: Sequence[str]) -> JobRecord | None:
        """The record of job ``job_id`` in the first of ``queues`` that has one (one
        pipelined read over them all); None when no queue knows it: never enqueued here, or
        finished longer than ``worker.completed_ttl`` ago. Safe to repeat."""

        def read() -> list[Any]:
            pipe = self.client.pipeline(transaction=False)
            for queue in queues:
                pipe.hgetall(self.keys.queue(queue).job(job_id))
            return cast("list[Any]", pipe.execute())

        for queue, fields in zip(queues, self.repeat(read), strict=True):
            if fields:
                return JobRecord.from_hash(job_id, queue, fields)
        return None

    def held(self, queue: str, worker_id: str) -> Held:
        """What the worker's lists on ``queue`` hold (to reconcile after a lost reply)."""
        q = self.keys.queue(queue)

        def read() -> list[Any]:
            pipe = self.client.pipeline(transaction=False)
            pipe.lrange(q.reserved(worker_id), 0, -1)
            pipe.lrange(q.processing(worker_id), 0, -1)
            return cast("list[Any]", pipe.execute())

        reserved, processing = self.repeat(read)
        return Held(list(reversed(reserved)), list(reversed(processing)))

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

    # -- recovery ------------------------------------------------------------------------

    def reap(self, worker_id: str, queues: Iterable[str], policy: RetryPolicy) -> ReapResult:
        """Recover the jobs of a worker whose leases have expired: started ones back to their
        queue with one more crash counted (``Job.with_crash``; dead-lettered when that was
        their last), unstarted ones back untouched. A queue whose lease is still alive is
        left alone (``complete`` False)."""
        result = ReapResult()
        for queue in queues:
            result.complete &= self._reap_queue(queue, worker_id, policy, result)
        return result

    def _reap_queue(
        self, queue: str, worker_id: str, policy: RetryPolicy, result: ReapResult
    ) -> bool:
        q = self.keys.queue(queue)
        reason = f"reaped: worker {worker_id} died while running it"
        keys = [q.processing(worker_id), q.reserved(worker_id), q.lease(worker_id)]
        keys += [q.pending, q.dead, q.stats]
        futile = 0
        while futile < REAP_FUTILE:
            oldest = self._oldest_started(queue, worker_id)
            successors = [self._successor(queue, raw, policy, reason) for raw in oldest]
            args = [ms(self.limits.completed_ttl), *(part for s in successors for part in s[:3])]
            reply = self.scripts["reap"](keys=keys, args=args)
            status, released, flags = int(reply[0]), int(reply[1]), reply[2:]
            if status == 0:
                return False
            result.released += released
            result.per_queue[queue] += released
            for (_, _, destination, job_id), moved in zip(successors, flags, strict=True):
                if moved:
                    result.count(queue, job_id, destination == "d")
            if status == 1:
                return True
            futile = 0 if released or any(flags) else futile + 1
        return False

    def _oldest_started(self, queue: str, worker_id: str) -> list[bytes]:
        """Up to REAP_PAGE entries from the old end of a worker's processing list."""
        key = self.keys.queue(queue).processing(worker_id)
        page = self.repeat(lambda: self.client.lrange(key, -REAP_PAGE, -1))
        return list(reversed(cast("list[bytes]", page)))

    def _successor(
        self, queue: str, raw: bytes, policy: RetryPolicy, reason: str
    ) -> tuple[bytes, bytes, str, str]:
        """(payload, what replaces it, 'p' queue or 'd' dead-letter, job id)."""
        claimed = self.decode(queue, raw)
        if claimed.job is None:
            return raw, dead_entry_for_raw(raw, queue, claimed.error), "d", "(malformed)"
        crashed = claimed.job.with_crash(reason)
        if policy.exhausted(crashed.crashes):
            why = f"crashed its worker {crashed.crashes} times: {reason}"
            return raw, dead_entry_for_job(crashed, why), "d", crashed.id
        return raw, crashed.to_json(), "p", crashed.id

    def requeue_dead(self, queue: str, limit: int | None) -> tuple[int, int]:
        """Send up to ``limit`` (None: all) dead jobs back, oldest first, attempts reset.

        Returns (moved, skipped). Only the entries that were dead when it started are
        considered: new deaths go to the other end of the list, so a job that dies again
        while this runs (workers keep running) is not sent back a second time. Raw malformed
        entries are skipped (they would only die again) and stay where they are.
        """
        q = self.keys.queue(queue)
        budget = int(self.client.llen(q.dead))
        examined = moved = skipped = 0
        while examined < budget and (limit is None or moved < limit):
            size = min(DEAD_PAGE, budget - examined)
            page = cast(
                "list[bytes]", self.client.lrange(q.dead, -(skipped + size), -(skipped + 1))
            )
            if not page:
                break
            args: list[bytes] = []
            for entry in reversed(page):  # oldest first
                if limit is not None and len(args) // 2 == limit - moved:
                    break
                examined += 1
                job = job_from_dead_entry(entry)
                if job is None:
                    skipped += 1
                else:
                    args += [entry, job.reset_for_requeue().to_json()]
            if args:
                moved += int(
                    self.scripts["requeue_dead"](keys=[q.dead, q.pending, q.stats], args=args)
                )
        return moved, skipped

    def requeue_dead_entries(self, queue: str, entries: Sequence[bytes]) -> int:
        """Send these dead-letter entries (as read from the list) back to their queue,
        attempts reset; returns how many moved. Raw malformed entries are left (they would
        only die again), as are entries already gone."""
        q = self.keys.queue(queue)
        args: list[bytes] = []
        for entry in entries:
            job = job_from_dead_entry(entry)
            if job is not None:
                args += [entry, job.reset_for_requeue().to_json()]
        if not args:
            return 0
        return int(self.scripts["requeue_dead"](keys=[q.dead, q.pending, q.stats], args=args))

    def drop_dead(self, queue: str, entries: Sequence[bytes]) -> int:
        """Delete these dead-letter entries and their jobs' records; returns how many."""
        q = self.keys.queue(queue)
        if not entries:
            return 0
        return int(self.scripts["drop_dead"](keys=[q.dead, q.stats], args=list(entries)))

    def run_now(self, queue: str, members: Sequence[bytes]) -> int:
        """Move these scheduled jobs (members as read) to the head of their queue; returns
        how many moved (one already promoted is skipped)."""
        q = self.keys.queue(queue)
        if not members:
            return 0
        keys = [q.scheduled, q.pending, q.stats]
        return int(self.scripts["run_now"](keys=keys, args=list(members)))

    def withdraw(self, queue: str, marker: str) -> int:
        """Remove the pending and scheduled jobs whose payload contains ``marker`` (a tool's
        own synthetic jobs, tagged so); returns how many. Claimed ones are left alone."""
        q = self.keys.queue(queue)
        keys = [q.pending, q.scheduled, q.stats]
        return int(self.repeat(lambda: self.scripts["withdraw"](keys=keys, args=[marker])))
