"""Job transitions, gathered into one round trip.

Every state change of a job is one Lua script (``lua/<name>.lua``), atomic on its own. A
:class:`Batch` sends several of them in one pipeline: a worker's hub records the jobs that
started, acknowledges or retries the ones that finished and claims the next ones, for every
queue it serves, in a single round trip (BullMQ's ``moveToFinished`` fetches the next job
with the ack the same way). The pipeline is not a transaction and needs none: each script is
fenced on the exact bytes it moves, so any subset of them having run is a consistent state.
On a Cluster redis-py splits the pipeline by node; each script touches one hash slot (with
``redis.wait_replicas`` the batch splits it itself, see ``Batch._send_per_shard``).

Each builder returns a :class:`Call` whose ``value`` is set by :meth:`Batch.execute`.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, Literal, TypeVar

from redis.cluster import RedisCluster
from redis.exceptions import ConnectionError as LostConnection
from redis.exceptions import MovedError, NoScriptError, RedisError, ResponseError
from redis.exceptions import TimeoutError as NoReply

from jobqueue.job import Claimed, check_delay, dead_entry_for_job, dead_entry_for_raw

if TYPE_CHECKING:
    from jobqueue.engine.queue import Engine, RetryPolicy

T = TypeVar("T")
Outcome = Literal["retried", "dead", "fenced"]
_UNSET: Any = object()


def ms(seconds: float) -> int:
    """Seconds as whole milliseconds, never negative (Redis refuses negative PX)."""
    return max(0, round(seconds * 1000))


@dataclass(slots=True)
class Call(Generic[T]):
    """One script call in a batch; ``value`` is its decoded reply once the batch ran."""

    script: str
    keys: list[str]
    args: list[Any]
    decode: Callable[[Any], T]
    _value: Any = field(default=_UNSET)

    @property
    def done(self) -> bool:
        """Redis ran it and its reply was decoded (False: not sent yet, or refused)."""
        return self._value is not _UNSET

    @property
    def value(self) -> T:
        if self._value is _UNSET:
            raise RuntimeError(f"{self.script}: the batch has not run")
        return self._value  # type: ignore[no-any-return]


def _flags(reply: Any) -> list[bool]:
    return [bool(flag) for flag in reply]


class NotReplicated(RedisError):
    """``redis.wait_replicas`` asked for replicas that did not confirm an enqueue in time
    (Redis WAIT). The primary has the jobs, but a failover now could lose them: the producer
    must treat them as not known to be kept (send them again with idempotency keys)."""

    def __init__(self, confirmed: int, wanted: int) -> None:
        super().__init__(f"only {confirmed} of {wanted} replicas confirmed the enqueue in time")
        self.confirmed, self.wanted = confirmed, wanted


class Batch:
    """Script calls for one pipelined round trip, built against one engine's key schema.

    With ``redis.wait_replicas`` set, a round trip that enqueues or acks ends with Redis'
    WAIT on the same connection: it returns once that many replicas have every write, or
    after ``wait_timeout``. An enqueue not confirmed raises NotReplicated (its success would
    not survive a failover); an ack not confirmed is not an error (a failover then re-runs
    the job, at least once). Cost: one replication round trip per batch."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.calls: list[Call[Any]] = []
        self.enqueues = 0  # enqueue calls: a success may be reported only once replicated
        self.acks = 0
        self.replicas: int | None = None  # what WAIT answered, when it was sent

    def __len__(self) -> int:
        return len(self.calls)

    def add(
        self, script: str, keys: list[str], args: list[Any], decode: Callable[[Any], T]
    ) -> Call[T]:
        call = Call(script, keys, args, decode)
        self.calls.append(call)
        return call

    def execute(self) -> None:
        """Send every call in one round trip (per shard) and decode each reply.

        EVALSHA is sent as a raw command because redis-py refuses Script objects in a Cluster
        pipeline. A NOSCRIPT reply (a node that never saw the script: SCRIPT FLUSH, a restart,
        a promoted replica) loads the script and reruns only those calls: a NOSCRIPT call did
        nothing, so nothing runs twice. Any other error reply is raised after the others have
        been decoded. The client never resends a call by itself (see connection.py).
        """
        scripts = self.engine.scripts
        todo = list(self.calls)
        for attempt in range(2):
            if not todo:
                return
            missing: list[Call[Any]] = []
            failure: Exception | None = None
            for call, reply in zip(todo, self._send(todo), strict=True):
                if isinstance(reply, NoScriptError) and attempt == 0:
                    missing.append(call)
                elif isinstance(reply, Exception):
                    failure = failure or reply
                else:
                    call._value = call.decode(reply)
            if failure is not None:
                raise failure
            wanted = self.engine.limits.wait_replicas
            if self.replicas is not None and self.enqueues and self.replicas < wanted:
                raise NotReplicated(self.replicas, wanted)
            for name in dict.fromkeys(call.script for call in missing):
                self.engine.client.script_load(scripts[name].script)
            todo = missing

    def _send(self, todo: list[Call[Any]]) -> list[Any]:
        """One pipeline: the calls, then WAIT when replicas must confirm (on the same
        connection, so that it answers for these writes); the calls' replies."""
        limits = self.engine.limits
        waits = bool(limits.wait_replicas and (self.enqueues or self.acks))
        client = self.engine.client
        if waits and isinstance(client, RedisCluster):
            return self._send_per_shard(client, todo)
        if len(todo) == 1 and not waits:  # one call: no pipeline (its overhead is ~20%)
            return [self._call(client, todo[0])]
        replies, self.replicas = self._run(client.pipeline(transaction=False), todo, waits)
        return replies

    def _call(self, client: Any, call: Call[Any]) -> Any:
        """One script call; an error reply is returned as a pipeline would return it."""
        sha = self.engine.scripts[call.script].sha
        try:
            return client.execute_command("EVALSHA", sha, len(call.keys), *call.keys, *call.args)
        except ResponseError as exc:  # NOSCRIPT included: execute() loads and reruns it
            return exc

    def _send_per_shard(self, cluster: RedisCluster, todo: list[Call[Any]]) -> list[Any]:
        """On a Cluster WAIT answers for one connection's writes to one primary, and redis-py's
        cluster pipeline spreads calls over pooled connections. So each primary's calls go
        down a plain pipeline on one connection to it, WAIT last, shard after shard; the
        fewest replicas any shard confirmed is what the batch got. A lost connection or a
        MOVED reply (a failover, a resharding) makes the client learn the slots again."""
        by_node: dict[str, list[int]] = defaultdict(list)
        for index, call in enumerate(todo):
            node = cluster.get_node_from_key(call.keys[0])  # type: ignore[no-untyped-call]
            by_node[node.name].append(index)
        replies: list[Any] = [None] * len(todo)
        confirmed: list[int] = []
        try:
            for name, indexes in by_node.items():
                node = cluster.get_node(node_name=name)  # type: ignore[no-untyped-call]
                pipe = cluster.get_redis_connection(node).pipeline(transaction=False)
                got, replicas = self._run(pipe, [todo[i] for i in indexes], waits=True)
                for index, reply in zip(indexes, got, strict=True):
                    replies[index] = reply
                confirmed.append(replicas or 0)
                if any(isinstance(reply, MovedError) for reply in got):
                    cluster.nodes_manager.initialize()
        except (LostConnection, NoReply):
            cluster.nodes_manager.initialize()
            raise
        self.replicas = min(confirmed, default=0)
        return replies

    def _run(self, pipe: Any, calls: list[Call[Any]], waits: bool) -> tuple[list[Any], int | None]:
        """Send ``calls`` (and WAIT when ``waits``) down ``pipe``: their replies, and how
        many replicas WAIT confirmed (None when it was not sent)."""
        scripts, limits = self.engine.scripts, self.engine.limits
        for call in calls:
            sha = scripts[call.script].sha
            pipe.execute_command("EVALSHA", sha, len(call.keys), *call.keys, *call.args)
        if waits:
            pipe.execute_command("WAIT", limits.wait_replicas, ms(limits.wait_timeout))
        replies = list(pipe.execute(raise_on_error=False))
        if not waits:
            return replies, None
        confirmed = replies.pop()
        return replies, confirmed if isinstance(confirmed, int) else 0

    # -- producing -------------------------------------------------------------------------

    def enqueue(
        self,
        queue: str,
        jobs: Sequence[tuple[bytes, str]],
        delay: float,
        dedupe_id: bool = False,
    ) -> Call[list[bool]]:
        """Jobs (payload, idempotency key or '') for one queue, in one script call; a flag
        per job: False when its idempotency key is live or done, or (``dedupe_id``) when
        its id already has a record. Raises UsageError for a delay outside 0 to 10 years."""
        q = self.engine.keys.queue(queue)
        keys = [q.pending, q.scheduled, q.stats]
        args: list[Any] = [
            ms(check_delay(delay)),
            ms(self.engine.limits.dedupe_ttl),
            int(dedupe_id),
        ]
        for payload, idempotency_key in jobs:
            if idempotency_key:
                keys.append(q.idempotency(idempotency_key))
            args += [payload, len(keys) if idempotency_key else 0]
        self.enqueues += 1
        return self.add("enqueue", keys, args, _flags)

    def promote(self, queue: str, limit: int) -> Call[int]:
        q = self.engine.keys.queue(queue)
        return self.add("promote", [q.scheduled, q.pending, q.stats], [limit], int)

    # -- a worker's jobs -------------------------------------------------------------------

    def claim(
        self, queue: str, worker_id: str, limit: int, min_lease: float
    ) -> Call[ClaimReply | None]:
        """Up to ``limit`` jobs into the worker's reserved list, oldest first, within the
        queue's rate limit (``worker.rate_limits``); None when the worker's lease on the
        queue is missing or has less than ``min_lease`` seconds left."""
        q = self.engine.keys.queue(queue)
        keys = [q.pending, q.reserved(worker_id), q.lease(worker_id), q.rate, q.stats]
        rate, burst = self.engine.limits.rates.get(queue, (0.0, 0))
        return self.add("claim", keys, [limit, ms(min_lease), repr(rate), burst], _claimed)

    def start(self, queue: str, worker_id: str, raws: Sequence[bytes]) -> Call[list[bool]]:
        """Record jobs as started (reserved -> processing); False for one no longer reserved
        to this worker, or for all of them when its lease is gone."""
        q = self.engine.keys.queue(queue)
        keys = [q.reserved(worker_id), q.processing(worker_id), q.lease(worker_id), q.stats]
        return self.add("start", keys, list(raws), _flags)

    def ack(self, queue: str, worker_id: str, jobs: Sequence[Claimed]) -> Call[list[bool]]:
        """Record jobs as completed, fenced on their being in one of the worker's lists (a
        job that finished within a round trip of its start is acked from the reserved list,
        its start never recorded); marks their idempotency keys done."""
        q = self.engine.keys.queue(queue)
        keys = [q.processing(worker_id), q.reserved(worker_id), q.completed, q.stats]
        limits = self.engine.limits
        args: list[Any] = [limits.completed_max, ms(limits.dedupe_ttl), ms(limits.completed_ttl)]
        for claimed in jobs:
            idem = claimed.job.idempotency_key if claimed.job else ""
            if idem:
                keys.append(q.idempotency(idem))
            args += [claimed.raw, len(keys) if idem else 0]
        self.acks += 1
        return self.add("ack", keys, args, _flags)

    def fail(
        self,
        claimed: Claimed,
        worker_id: str,
        error: str,
        policy: RetryPolicy,
        crashed: bool = False,
    ) -> Call[Outcome]:
        """Schedule a retry with backoff, or dead-letter the job once out of retries.
        ``crashed``: its worker died while running it, which spends the job's crash budget
        (``Job.with_crash``), not its retries."""
        if claimed.job is None:
            return self.bury(claimed, worker_id, claimed.error or error)
        if crashed:
            failed = claimed.job.with_crash(error)
            count, why = failed.crashes, f"crashed its worker {failed.crashes} times"
        else:
            failed = claimed.job.with_failure(error)
            count, why = failed.retries, f"out of retries ({policy.max_retries})"
        if policy.exhausted(count):
            entry = dead_entry_for_job(failed, f"{why}: {error}")
            return self._bury_entry(claimed, worker_id, entry)
        q = self.engine.keys.queue(claimed.queue)
        keys = [q.processing(worker_id), q.reserved(worker_id), q.scheduled, q.stats]
        args = [claimed.raw, failed.to_json(), ms(policy.backoff(count))]
        return self.add("retry", keys, args, lambda moved: "retried" if moved else "fenced")

    def bury(self, claimed: Claimed, worker_id: str, reason: str) -> Call[Outcome]:
        """Dead-letter a job of the worker's at once (malformed, oversized, or forbidden)."""
        if claimed.job is None:
            entry = dead_entry_for_raw(claimed.raw, claimed.queue, reason)
        else:
            entry = dead_entry_for_job(claimed.job, reason)
        return self._bury_entry(claimed, worker_id, entry)

    def _bury_entry(self, claimed: Claimed, worker_id: str, entry: bytes) -> Call[Outcome]:
        q = self.engine.keys.queue(claimed.queue)
        keys = [q.processing(worker_id), q.reserved(worker_id), q.dead, q.stats]
        args = [claimed.raw, entry, ms(self.engine.limits.completed_ttl)]
        return self.add("bury", keys, args, lambda moved: "dead" if moved else "fenced")

    def release(
        self, queue: str, worker_id: str, raws: Sequence[bytes], started: bool
    ) -> Call[int]:
        """Give jobs back to the head of their queue without counting an attempt: unstarted
        ones (``started`` False) from the reserved list, else from the processing list.
        ``raws`` oldest first; the oldest is claimed next."""
        q = self.engine.keys.queue(queue)
        source = q.processing(worker_id) if started else q.reserved(worker_id)
        return self.add("release", [source, q.pending, q.stats], list(reversed(raws)), int)


@dataclass(frozen=True, slots=True)
class ClaimReply:
    """What a claim got: ``jobs`` (oldest first), and ``wait`` seconds until the queue's
    rate limit gives a token again (0: it was not what stopped the claim)."""

    jobs: list[bytes]
    wait: float = 0.0


def _claimed(reply: Any) -> ClaimReply | None:
    if reply is None:
        return None
    return ClaimReply(list(reply[1:]), int(reply[0]) / 1000)
