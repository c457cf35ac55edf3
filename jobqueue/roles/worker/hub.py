"""The hub: the one thread of a worker process that talks to Redis about jobs.

Slots only run handlers. The hub, in one pipelined round trip per cycle, records the jobs
that started, settles the ones that finished (ack, retry, dead-letter) for every slot, hands
back what it will not run, and claims as many jobs as will start at once: one per idle slot,
plus a small reserve when jobs are so short that slots would otherwise wait on the round
trip. (Dramatiq's consumer thread fetches for all worker threads and acks in batches the same
way; BullMQ's moveToFinished brings the next job with the ack.) With one connection doing the
work of many, adding slots adds handler capacity, not Redis contention.

No hostage: the reserve is sized so that a reserved job starts within ``prefetch_max_wait``
(it is zero for slow jobs), the hub hands back any reserved job that waits longer than half
that, and the supervisor does it from outside when this process cannot (scoreboard.py). No
late ack: a result is settled in the next round trip, within milliseconds, and the
supervisor acks a finished job even if this process dies first.

After a lost connection the hub does not know whether its last claim ran; it re-reads its
own lists and hands back anything it does not hold (``_adopt``), then resends the rest,
which is fenced and so safe to repeat.
"""

from __future__ import annotations

import math
import threading
import time
from collections import Counter, defaultdict, deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from jobqueue.engine import Batch, Call, Outcome, RedisError, jittered_backoff
from jobqueue.job import Claimed
from jobqueue.roles.worker.breaker import BreakerState, Permit
from jobqueue.roles.worker.context import WorkerContext
from jobqueue.roles.worker.rotation import ClaimPlanner
from jobqueue.roles.worker.scoreboard import State, digest
from jobqueue.roles.worker.waker import Wakers

TICK = 1.0  # the hub looks again at least this often, whatever happens
ACK_DELAY = 0.002  # the longest a finished job waits for its ack to be sent
LEASE_POLL = 0.01  # how often a hub without a lease looks for a renewal


@dataclass(slots=True, eq=False)
class Ticket:
    """A claimed job in this process's hands, from claim to settlement."""

    index: int  # its scoreboard entry
    claimed: Claimed
    generation: int  # the lease generation it was claimed under
    claimed_at: float
    probe: bool = False  # the circuit breaker's half-open probe
    skip: bool = False  # its idempotency key is already done: settle without running


@dataclass(slots=True)
class Result:
    """A finished ticket: ``error`` None for success; ``dead`` to dead-letter at once."""

    ticket: Ticket
    error: str | None
    dead: bool = False
    seconds: float = 0.0


@dataclass(slots=True)
class Outbox:
    """What the next round trip must tell Redis."""

    started: list[Ticket] = field(default_factory=list)
    results: list[Result] = field(default_factory=list)
    returns: list[Ticket] = field(default_factory=list)  # hand back, unstarted
    # taken back by the supervisor, which releases them itself: only to be forgotten here.
    # Releasing them again could remove a new copy of the same bytes claimed meanwhile.
    forgets: list[Ticket] = field(default_factory=list)
    since: float = 0.0  # monotonic time the first of these went in

    def __bool__(self) -> bool:
        return bool(self.started or self.results or self.returns or self.forgets)

    def merge(self, other: Outbox) -> None:
        self.started += other.started
        self.results += other.results
        self.returns += other.returns
        self.forgets += other.forgets


def _by_queue(tickets: Iterable[Ticket]) -> dict[str, list[Ticket]]:
    grouped: dict[str, list[Ticket]] = defaultdict(list)
    for ticket in tickets:
        grouped[ticket.claimed.queue].append(ticket)
    return grouped


class Hub:
    """Claims for, hands out to, and settles for the slots of one worker process."""

    def __init__(self, ctx: WorkerContext, slots: int) -> None:
        self.ctx = ctx
        self.slots = slots
        worker = ctx.settings.worker
        self.capacity = ctx.board.capacity
        self._cond = threading.Condition(ctx.board.lock)
        self._wake = threading.Event()
        # Guarded by _cond:
        self._work: deque[Ticket] = deque()
        self._running = 0
        self._outbox = Outbox()
        self._stopping = False
        # The hub thread's own:
        self._free = list(range(self.capacity - 1, -1, -1))
        self._held: Counter[bytes] = Counter()
        self._carry = Outbox()  # sent in a round trip that failed: send again
        weights = {q: worker.weights[p] for p, q in zip(worker.priorities, ctx.queues, strict=True)}
        self._planner = ClaimPlanner(weights)
        self._wakers = Wakers(ctx, self.nudge)
        self._job_seconds: float | None = None
        self._trip_seconds = 0.001
        self._refused_at = -1  # the lease renewal count when a claim was last refused
        self._adopt_at = time.monotonic()  # reconcile with Redis on the first cycle
        self._failures = 0
        self._backoff = jittered_backoff()
        self._claim_generation = ctx.board.generation
        self._claim_renewals = ctx.board.renewals
        self._hold = worker.prefetch_max_wait
        self._consumed = {q: ctx.metrics.jobs_consumed.labels(q) for q in ctx.queues}
        self._completed = {q: ctx.metrics.jobs_completed.labels(q) for q in ctx.queues}
        self._flush_at = max(16, self.capacity // 2)  # results that make a round trip due
        self._low_water = 0  # queued jobs at which the reserve is topped up
        self._dry = False  # the last claim found the queues empty; wait for a waker
        self._claimed_at = 0.0
        self._claim_wanted = 0
        self._claims_blocked_until = 0.0  # the breaker said wait, or the lease was refused

    # -- the slots' side --------------------------------------------------------------------

    def next_ticket(self, slot: int) -> Ticket | None:
        """Block until there is a job for this slot (None: the process is stopping)."""
        with self._cond:
            while True:
                if not self._work and not self._stopping:
                    self._wake.set()  # an idle slot: the hub should claim
                    while not self._work and not self._stopping:
                        self._cond.wait()
                if not self._work:
                    return None
                ticket = self._work.popleft()
                if len(self._work) <= self._low_water:
                    self._wake.set()
                if self._startable(ticket, slot):
                    self._running += 1
                    self._opening()
                    self._outbox.started.append(ticket)
                    return ticket

    def _startable(self, ticket: Ticket, slot: int) -> bool:
        """Start it, or hand it back (lock held): never start a job the lease may no longer
        cover, or a non-probe job while the breaker is not closed."""
        ctx = self.ctx
        if ctx.board.state(ticket.index) is State.TAKEN:  # the supervisor took it back
            self._opening()
            self._outbox.forgets.append(ticket)
            return False
        breaker_ok = ticket.probe or ctx.breaker.state is BreakerState.CLOSED
        if breaker_ok and ctx.fresh_lease(time.monotonic(), ticket.generation):
            return ctx.board.start(ticket.index, slot)
        ctx.board.take_back(ticket.index)
        self._opening()
        self._outbox.returns.append(ticket)
        return False

    def _opening(self) -> None:
        """Call (lock held) before adding to the outbox: the first item starts the
        ``ACK_DELAY`` clock and wakes the hub, so that it knows when to send."""
        if not self._outbox:
            self._outbox.since = time.monotonic()
            self._wake.set()

    def report(self, result: Result) -> None:
        """A slot finished a ticket."""
        self.ctx.board.finish(result.ticket.index, result.error)
        with self._cond:
            self._running -= 1
            self._opening()
            self._outbox.results.append(result)
            if len(self._outbox.results) >= self._flush_at:
                self._wake.set()

    # -- control ------------------------------------------------------------------------------

    def stop(self) -> None:
        """Stop claiming; hand back what has not started; let running jobs finish."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        self._wake.set()

    def nudge(self, queue: str | None = None) -> None:
        """Look again now (a queue has work again)."""
        if queue is not None:
            self._planner.wake(queue)
        self._dry = False
        self._wake.set()

    def run(self) -> None:
        """Cycle until stopped and every job this process held is settled or handed back."""
        self._wakers.start()
        try:
            while True:
                delay = self._due()
                if delay > 0:
                    self._wake.wait(delay)
                    self._wake.clear()
                elif not self._cycle():
                    return
        finally:
            self._wakers.stop()

    def _due(self) -> float:
        """Seconds until the next round trip is worth making (0: now).

        Now, when a slot waits for work, the reserve runs low, something must be handed back,
        or enough results wait. Results are otherwise sent ``ACK_DELAY`` after the first of
        them finished (so a busy process acks many jobs per round trip), reserved jobs are
        looked at again when the oldest would wait too long, and every ``TICK`` regardless.
        """
        now = time.monotonic()
        with self._cond:
            outbox, queued = self._outbox, len(self._work)
            if self._stopping or outbox.returns or len(outbox.results) >= self._flush_at:
                return 0.0
            if self._claim_now(queued, now):
                return 0.0
            deadline = min(now + TICK, self._adopt_at)
            if self._claims_blocked_until > now:
                deadline = min(deadline, self._claims_blocked_until)
            if outbox:
                deadline = min(deadline, outbox.since + ACK_DELAY)
            if queued:
                deadline = min(deadline, self._work[0].claimed_at + self._hold / 2)
            if self.ctx.board.renewals == self._refused_at:
                deadline = min(deadline, now + LEASE_POLL)  # for the supervisor to renew
        return max(0.0, deadline - now)

    def _claim_now(self, queued: int, now: float) -> bool:
        """A claim is due: a slot is idle or the reserve is low, and the last claim did not
        find the queues empty, the lease missing or the breaker shut (lock held)."""
        if now < self._claims_blocked_until or (self._dry and now < self._claimed_at + TICK):
            return False
        if self.ctx.board.renewals == self._refused_at:
            return False
        idle = self.slots - self._running - queued > 0
        return self._wanted(queued) > 0 and (idle or queued <= self._low_water)

    # -- one cycle ----------------------------------------------------------------------------

    def _cycle(self) -> bool:
        """One round trip; False when the process may exit."""
        outbox, stopping, want = self._collect()
        outbox.merge(self._carry)
        self._carry = Outbox()
        try:
            if time.monotonic() >= self._adopt_at:
                self._adopt(outbox)
            self._exchange(outbox, want)
            self._failures = 0
        except RedisError as exc:
            self._carry = outbox
            self._back_off(exc)
        with self._cond:
            busy = self._running or self._work or self._outbox
        return not (stopping and not busy and not self._carry)

    def _collect(self) -> tuple[Outbox, bool, int]:
        """Take the outbox, hand back stale or (when stopping) all queued jobs, and work out
        how many jobs to claim."""
        now = time.monotonic()
        with self._cond:
            outbox, self._outbox = self._outbox, Outbox()
            stopping = self._stopping
            limit = now if stopping else now - self._hold / 2
            if self.ctx.breaker.state is BreakerState.OPEN:
                limit = now
            while self._work and self._work[0].claimed_at <= limit:
                ticket = self._work.popleft()
                taken = self.ctx.board.take_back(ticket.index)
                (outbox.returns if taken else outbox.forgets).append(ticket)
            want = 0 if stopping else self._wanted(len(self._work))
            running = self._running
        self.ctx.metrics.jobs_inflight.set(running)  # every change is followed by a cycle
        return outbox, stopping, want

    def _wanted(self, queued: int) -> int:
        """Jobs to claim now: one per idle slot plus the reserve, within the scoreboard
        (lock held)."""
        reserve = self._reserve()
        self._low_water = reserve // 2
        want = self.slots + reserve - self._running - queued
        return max(0, min(want, len(self._free)))

    def _reserve(self) -> int:
        """How many claimed jobs may wait for a slot: the jobs the slots finish during one
        round trip (so no slot waits on the hub), capped so the last of them starts within
        half of ``prefetch_max_wait`` and by ``worker.prefetch``. Zero until a job's length
        is known, and for long jobs."""
        if self._job_seconds is None:
            return 0
        per_job = max(self._job_seconds, 1e-6)
        worker = self.ctx.settings.worker
        covering = math.ceil(2 * self.slots * self._trip_seconds / per_job)
        bounded = math.floor(self.slots * worker.prefetch_max_wait / (2 * per_job))
        return max(0, min(worker.prefetch, covering, bounded))

    def _back_off(self, exc: BaseException) -> None:
        self._failures += 1
        delay = self._backoff(self._failures)
        # A claim in the failed trip may have run (a lost reply, or another call's error
        # raised in its place): read the lists again before the next claim.
        self._adopt_at = time.monotonic()
        self.ctx.log.warning(
            "redis error in the worker's round trip; backing off",
            error=str(exc),
            retry_in=round(delay, 3),
        )
        self._wake.wait(delay)
        self._wake.clear()

    # -- the round trip ---------------------------------------------------------------------

    def _exchange(self, outbox: Outbox, want: int) -> None:
        """Send the outbox and the claims in one round trip, then act on the replies."""
        ctx = self.ctx
        batch = ctx.engine.batch()
        finished = {id(result.ticket) for result in outbox.results}
        running = [t for t in outbox.started if id(t) not in finished]
        starts = self._add_starts(batch, running)
        settles = self._add_results(batch, outbox.results)
        for queue, tickets in _by_queue(outbox.returns).items():
            batch.release(queue, ctx.worker_id, [t.claimed.raw for t in tickets], started=False)
        permit, claims = self._add_claims(batch, want)
        if not len(batch):
            self._settled(outbox)
            return
        sent = time.monotonic()
        try:
            batch.execute()
        except BaseException:
            if permit is Permit.PROBE:
                ctx.breaker.cancel_probe()
            raise
        self._trip_seconds = 0.8 * self._trip_seconds + 0.2 * (time.monotonic() - sent)
        self._settled(outbox)
        self._count_starts(starts)
        self._count_settles(settles)
        self._take_claims(claims, permit)

    def _add_starts(self, batch: Batch, started: Sequence[Ticket]) -> list[Call[list[bool]]]:
        worker_id = self.ctx.worker_id
        return [
            batch.start(queue, worker_id, [t.claimed.raw for t in tickets])
            for queue, tickets in _by_queue(started).items()
        ]

    def _add_results(
        self, batch: Batch, results: Sequence[Result]
    ) -> list[tuple[list[Result], Call[list[bool]] | Call[Outcome]]]:
        ctx, worker_id = self.ctx, self.ctx.worker_id
        settles: list[tuple[list[Result], Call[list[bool]] | Call[Outcome]]] = []
        acks: dict[str, list[Result]] = defaultdict(list)
        for result in results:
            claimed = result.ticket.claimed
            if result.error is None:
                acks[claimed.queue].append(result)
            elif result.dead:
                settles.append(([result], batch.bury(claimed, worker_id, result.error)))
            else:
                settles.append(([result], batch.fail(claimed, worker_id, result.error, ctx.policy)))
        for queue, done in acks.items():
            settles.append((done, batch.ack(queue, worker_id, [r.ticket.claimed for r in done])))
        return settles

    def _add_claims(
        self, batch: Batch, want: int
    ) -> tuple[Permit, list[tuple[str, int, Call[list[bytes] | None]]]]:
        ctx = self.ctx
        if want <= 0 or ctx.board.renewals == self._refused_at:
            return Permit.WAIT, []
        permit = ctx.breaker.acquire()
        if permit is Permit.WAIT:
            self._claims_blocked_until = time.monotonic() + max(ctx.breaker.wait_hint(), 0.01)
            return permit, []
        if permit is Permit.PROBE:
            plan = {self._planner.next_queue(): 1}
        else:
            plan = self._planner.plan(want)
        self._claim_generation = ctx.board.generation
        self._claim_renewals = ctx.board.renewals
        self._claimed_at, self._claim_wanted = time.monotonic(), want
        min_lease = ctx.settings.worker.claim_timeout
        claims = [
            (queue, n, batch.claim(queue, ctx.worker_id, n, min_lease)) for queue, n in plan.items()
        ]
        return permit, claims

    # -- after the round trip -----------------------------------------------------------------

    def _settled(self, outbox: Outbox) -> None:
        """Forget what Redis now has: settled and handed-back jobs free their entries."""
        for ticket in [r.ticket for r in outbox.results] + outbox.returns + outbox.forgets:
            self._held[ticket.claimed.raw] -= 1
            if self._held[ticket.claimed.raw] <= 0:
                del self._held[ticket.claimed.raw]
            self.ctx.board.free(ticket.index)
            self._free.append(ticket.index)

    def _count_starts(self, starts: list[Call[list[bool]]]) -> None:
        lost = sum(flag is False for call in starts for flag in call.value)
        if lost:
            self.ctx.log.warning(
                "started jobs were no longer this worker's (reaped or handed back while it "
                "stalled); their results will be fenced out",
                n=lost,
            )

    def _count_settles(
        self, settles: list[tuple[list[Result], Call[list[bool]] | Call[Outcome]]]
    ) -> None:
        for results, call in settles:
            value = call.value
            if isinstance(value, list):  # an ack of several jobs
                self._account_acks(results, value)
            else:
                self._account_failure(results[0], value)
            for result in results:
                seconds = result.seconds
                average = self._job_seconds
                self._job_seconds = seconds if average is None else 0.8 * average + 0.2 * seconds

    def _account_acks(self, results: list[Result], flags: list[bool]) -> None:
        """Metrics and ledger lines for acked jobs, from what the ack script did."""
        ctx = self.ctx
        queue = results[0].ticket.claimed.queue
        acked = sum(flags)
        if acked:
            self._completed[queue].inc(acked)
        if acked < len(flags):
            ctx.log.warning(
                "acks fenced out: the jobs were no longer this worker's",
                n=len(flags) - acked,
                queue=queue,
            )
        if ctx.ledger.enabled:
            for result, recorded in zip(results, flags, strict=True):
                if recorded:
                    job_id = job_id_of(result.ticket)
                    ctx.ledger.record("done", ctx.worker_id, job_id, queue, result.seconds * 1000)

    def _account_failure(self, result: Result, outcome: Outcome) -> None:
        ctx = self.ctx
        queue, job_id = result.ticket.claimed.queue, job_id_of(result.ticket)
        if outcome == "fenced":
            ctx.log.warning(
                "result fenced out: the job was no longer this worker's", job_id=job_id, queue=queue
            )
            return
        if not result.dead:
            ctx.metrics.jobs_failed.labels(queue).inc()
        ms = result.seconds * 1000
        if outcome == "retried":
            ctx.metrics.jobs_retried.labels(queue).inc()
            ctx.ledger.record("retry", ctx.worker_id, job_id, queue, ms, result.error)
        else:
            ctx.metrics.jobs_dead_letter.labels(queue).inc()
            ctx.ledger.record("dead", ctx.worker_id, job_id, queue, ms, result.error)

    def _take_claims(
        self, claims: list[tuple[str, int, Call[list[bytes] | None]]], permit: Permit
    ) -> None:
        ctx = self.ctx
        tickets: list[Ticket] = []
        asked = got = 0
        for queue, n, call in claims:
            raws = call.value
            if raws is None:  # no lease with time left: the supervisor must register again
                self._refused_at = self._claim_renewals
                ctx.board.header.lost_lease = 1
                continue
            self._planner.observe(queue, n, len(raws))
            asked, got = asked + n, got + len(raws)
            if raws:
                self._consumed[queue].inc(len(raws))
            tickets += [self._ticket(queue, raw) for raw in raws]
        if permit is Permit.PROBE:
            if tickets:
                tickets[0].probe = True
            else:
                ctx.breaker.cancel_probe()
        if claims:
            self._dry = got < min(asked, self._claim_wanted)
            if self._dry:
                self._wakers.arm()
        self._check_done(tickets)
        if tickets:
            with self._cond:
                self._work.extend(tickets)
                self._cond.notify(len(tickets))

    def _ticket(self, queue: str, raw: bytes) -> Ticket:
        ctx = self.ctx
        index = self._free.pop()
        ctx.board.reserve(index, ctx.queues.index(queue), digest(raw), self._claim_generation)
        self._held[raw] += 1
        claimed = ctx.engine.decode(queue, raw)
        return Ticket(index, claimed, self._claim_generation, time.monotonic())

    def _check_done(self, tickets: list[Ticket]) -> None:
        """Mark jobs whose idempotency key is already done: they are acked unrun."""
        keyed = [t for t in tickets if t.claimed.job and t.claimed.job.idempotency_key]
        for queue, group in _by_queue(keyed).items():
            keys = [t.claimed.job.idempotency_key for t in group if t.claimed.job]
            for ticket, done in zip(group, self.ctx.engine.done_flags(queue, keys), strict=True):
                ticket.skip = done

    def _adopt(self, outbox: Outbox) -> None:
        """Hand back whatever this worker's lists hold that it does not know of: a claim whose
        reply was lost, a job it handed back but whose release did not arrive."""
        ctx = self.ctx
        self._adopt_at = time.monotonic() + ctx.settings.worker.heartbeat_ttl
        known = Counter(self._held)
        batch = ctx.engine.batch()
        strays = 0
        for queue in ctx.queues:
            held = ctx.engine.held(queue, ctx.worker_id)
            for raws, started in ((held.processing, True), (held.reserved, False)):
                unknown = [raw for raw in raws if not _claim(known, raw)]
                if unknown:
                    batch.release(queue, ctx.worker_id, unknown, started=started)
                    strays += len(unknown)
        if strays:
            batch.execute()
            ctx.log.info("handed back jobs this worker held without knowing", n=strays)


def _claim(known: Counter[bytes], raw: bytes) -> bool:
    """Take one ``raw`` from ``known``; False when there is none left."""
    if known[raw] <= 0:
        return False
    known[raw] -= 1
    return True


def job_id_of(ticket: Ticket) -> str:
    return ticket.claimed.job.id if ticket.claimed.job else "(malformed)"
