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
from collections.abc import Sequence

from jobqueue.engine import Batch, Call, ClaimReply, Reconnect, RedisError
from jobqueue.faults import crash_point
from jobqueue.roles.worker.accounts import Accounts, Settle
from jobqueue.roles.worker.breaker import BreakerState, Permit
from jobqueue.roles.worker.context import WorkerContext
from jobqueue.roles.worker.rotation import ClaimPlanner
from jobqueue.roles.worker.scoreboard import digest
from jobqueue.roles.worker.tickets import Outbox, Result, Ticket, by_queue
from jobqueue.roles.worker.waker import Wakers

TICK = 1.0  # the hub looks again at least this often, whatever happens
ACK_DELAY = 0.002  # the longest a finished job waits for its ack to be sent
LEASE_POLL = 0.01  # how often a hub without a lease looks for a renewal


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
        self._suspects: deque[Ticket] = deque()  # their worker died running them: run alone
        self._isolated: Ticket | None = None  # the suspect running alone now
        # The hub thread's own:
        self._free = list(range(self.capacity - 1, -1, -1))
        self._held: Counter[bytes] = Counter()
        self._carry = Outbox()  # sent in a round trip that failed: send again
        weights = {q: worker.weights[p] for p, q in zip(worker.priorities, ctx.queues, strict=True)}
        self._planner = ClaimPlanner(weights)
        self._wakers = Wakers(ctx, self.nudge)
        self._trip_seconds = 0.001
        self._start_margin = 0.0  # the slowest recent trip, decaying: when a start lands
        self._refused_at = -1  # the lease renewal count when a claim was last refused
        self._adopt_at = time.monotonic()  # reconcile with Redis on the first cycle
        self._reconnect = Reconnect(ctx.engine.outage, "jobqueue.hub")
        self._claim_generation = ctx.board.generation
        self._claim_renewals = ctx.board.renewals
        self._hold = worker.prefetch_max_wait
        self._consumed = {q: ctx.metrics.jobs_consumed.labels(q) for q in ctx.queues}
        self._rate_limited = {q: ctx.metrics.claims_rate_limited.labels(q) for q in ctx.queues}
        self._accounts = Accounts(ctx)
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
        cover when its start reaches Redis (one trip from now: on a slow network a start
        that lands after the lease expired lets a reaper hand the running job to another
        worker), or a non-probe job while the breaker is not closed."""
        ctx = self.ctx
        breaker_ok = ticket.probe or ctx.breaker.state is BreakerState.CLOSED
        lands = time.monotonic() + self._start_margin
        if breaker_ok and ctx.fresh_lease(lands, ticket.generation):
            if ctx.board.start(ticket.index, slot):
                return True
        elif ctx.board.take_back(ticket.index):
            self._opening()
            self._outbox.returns.append(self._leaving(ticket))
            return False
        self._opening()  # the supervisor took it back (and releases it)
        self._outbox.forgets.append(self._leaving(ticket))
        return False

    def _leaving(self, ticket: Ticket) -> Ticket:
        """A ticket goes back unrun (lock held). If it was the suspect queued to run alone,
        nothing runs alone any more: the next suspect, or the claims, may go on."""
        if ticket is self._isolated:
            self._isolated = None
        return ticket

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
            if result.ticket is self._isolated:
                self._isolated = None
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
            if self._suspects and not (self._running or self._work or self._isolated):
                return 0.0  # idle: the next suspect can run alone
            if self._claim_now(queued, now):
                return 0.0
            deadline = min(now + TICK, self._adopt_at)
            if self._claims_blocked_until > now:
                deadline = min(deadline, self._claims_blocked_until)
            if outbox:
                deadline = min(deadline, outbox.since + ACK_DELAY)
            if queued and self._work[0] is not self._isolated:
                deadline = min(deadline, self._work[0].claimed_at + self._hold / 2)
            if self.ctx.board.renewals == self._refused_at:
                deadline = min(deadline, now + LEASE_POLL)  # for the supervisor to renew
            reopening = self._planner.next_reopening()
            if reopening is not None:  # a rate-limited queue gets its next token
                deadline = min(deadline, reopening)
        return max(0.0, deadline - now)

    def _claim_now(self, queued: int, now: float) -> bool:
        """A claim is due: a slot is idle or the reserve is low, and the last claim did not
        find the queues empty, the lease missing or the breaker shut (lock held)."""
        reopening = self._planner.next_reopening()
        if reopening is not None and reopening <= now:
            self._dry = False  # a rate-limited queue has a token again: worth a claim
        if now < self._claims_blocked_until or (self._dry and now < self._claimed_at + TICK):
            return False
        if self.ctx.board.renewals == self._refused_at or not self._planner.open_queues(now):
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
        except RedisError as exc:
            self._carry = outbox
            self._back_off(exc)
        with self._cond:
            busy = self._running or self._work or self._outbox or self._suspects
        return not (stopping and not busy and not self._carry)

    def _collect(self) -> tuple[Outbox, bool, int]:
        """Take the outbox, hand back stale or (when stopping) all queued jobs, and work out
        how many jobs to claim."""
        now = time.monotonic()
        with self._cond:
            outbox, self._outbox = self._outbox, Outbox()
            stopping = self._stopping
            every = stopping or self.ctx.breaker.state is BreakerState.OPEN
            limit = now if every else now - self._hold / 2
            # A suspect queued to run alone is not stale: nothing else runs here, so no job
            # waits behind it, and it is the next thing this process starts.
            while self._work and self._work[0].claimed_at <= limit:
                if self._work[0] is self._isolated and not every:
                    break
                ticket = self._leaving(self._work.popleft())
                taken = self.ctx.board.take_back(ticket.index)
                (outbox.returns if taken else outbox.forgets).append(ticket)
            self._isolate_next(outbox, stopping)
            want = 0 if stopping else self._wanted(len(self._work))
            running = self._running
        self.ctx.metrics.jobs_inflight.set(running)  # every change is followed by a cycle
        return outbox, stopping, want

    def _isolate_next(self, outbox: Outbox, stopping: bool) -> None:
        """A job whose worker died while running it may be what killed it: it runs alone,
        when nothing else runs here, so that it cannot take innocent jobs down with it a
        second time, and a crash during its run is its own (lock held). When stopping, the
        waiting suspects go back to their queue."""
        board = self.ctx.board
        while self._suspects and stopping:
            ticket = self._suspects.popleft()
            board.isolate(ticket.index, waiting=False)
            taken = board.take_back(ticket.index)
            (outbox.returns if taken else outbox.forgets).append(ticket)
        if self._suspects and not (self._running or self._work or self._isolated):
            ticket = self._suspects.popleft()
            board.isolate(ticket.index, waiting=False)
            ticket.claimed_at = time.monotonic()
            self._work.append(ticket)
            self._isolated = ticket
            self._cond.notify(1)

    def _wanted(self, queued: int) -> int:
        """Jobs to claim now: one per idle slot plus the reserve, within the scoreboard; none
        while a suspect waits or runs alone (lock held)."""
        if self._suspects or self._isolated:
            return 0
        reserve = self._reserve()
        self._low_water = reserve // 2
        want = self.slots + reserve - self._running - queued
        return max(0, min(want, len(self._free)))

    def _reserve(self) -> int:
        """How many claimed jobs may wait for a slot: the jobs the slots finish during one
        round trip (so no slot waits on the hub), capped so the last of them starts within
        half of ``prefetch_max_wait`` and by ``worker.prefetch``. Zero until a job's length
        is known, and for long jobs."""
        if self._accounts.job_seconds is None:
            return 0
        per_job = max(self._accounts.job_seconds, 1e-6)
        worker = self.ctx.settings.worker
        covering = math.ceil(2 * self.slots * self._trip_seconds / per_job)
        bounded = math.floor(self.slots * worker.prefetch_max_wait / (2 * per_job))
        return max(0, min(worker.prefetch, covering, bounded))

    def _back_off(self, exc: BaseException) -> None:
        """Wait out the backoff (the process's Outage logs it): a plain sleep, since slots
        that finish or go idle meanwhile set ``_wake`` and would otherwise cut every wait
        short, and the hub would retry once per slot instead of once per backoff."""
        delay = self._reconnect.failed(exc)
        # A claim in the failed trip may have run (a lost reply, or another call's error
        # raised in its place): read the lists again before the next claim.
        self._adopt_at = time.monotonic()
        time.sleep(delay)

    # -- the round trip ---------------------------------------------------------------------

    def _exchange(self, outbox: Outbox, want: int) -> None:
        """Send the outbox and the claims in one round trip, then act on the replies."""
        ctx = self.ctx
        began = time.monotonic()
        batch = ctx.engine.batch()
        finished = {id(result.ticket) for result in outbox.results}
        running = [t for t in outbox.started if id(t) not in finished]
        starts = self._add_starts(batch, running)
        settles = self._add_results(batch, outbox.results)
        for queue, tickets in by_queue(outbox.returns).items():
            batch.release(queue, ctx.worker_id, [t.claimed.raw for t in tickets], started=False)
        permit, claims = self._add_claims(batch, want)
        if not len(batch):
            self._settled(outbox)
            return
        if outbox.results:
            crash_point("handled")
        try:
            batch.execute()
        except BaseException:
            self._note_trip(time.monotonic() - began)
            if permit is Permit.PROBE:
                ctx.breaker.cancel_probe()
            raise
        self._note_trip(time.monotonic() - began)
        self._reconnect.succeeded()
        if any(result.error is not None for result in outbox.results):
            crash_point("failed")
        self._settled(outbox)
        self._accounts.starts(starts)
        self._accounts.settles(settles)
        self._take_claims(claims, permit)
        if claims:
            self._trip_seconds = 0.8 * self._trip_seconds + 0.2 * (time.monotonic() - began)

    def _note_trip(self, seconds: float) -> None:
        """A round trip took ``seconds`` (or failed after them): the margin a start needs."""
        with self._cond:
            self._start_margin = max(seconds, 0.9 * self._start_margin)

    def _add_starts(self, batch: Batch, started: Sequence[Ticket]) -> list[Call[list[bool]]]:
        worker_id = self.ctx.worker_id
        return [
            batch.start(queue, worker_id, [t.claimed.raw for t in tickets])
            for queue, tickets in by_queue(started).items()
        ]

    def _add_results(self, batch: Batch, results: Sequence[Result]) -> list[Settle]:
        ctx, worker_id = self.ctx, self.ctx.worker_id
        settles: list[Settle] = []
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
    ) -> tuple[Permit, list[tuple[str, int, Call[ClaimReply | None]]]]:
        ctx = self.ctx
        now = time.monotonic()
        if want <= 0 or ctx.board.renewals == self._refused_at:
            return Permit.WAIT, []
        if not self._planner.open_queues(now):  # every queue waits for its rate limit
            return Permit.WAIT, []
        permit = ctx.breaker.acquire()
        if permit is Permit.WAIT:
            self._claims_blocked_until = now + max(ctx.breaker.wait_hint(), 0.01)
            return permit, []
        if permit is Permit.PROBE:
            probed = self._planner.next_queue(now)
            plan = {probed: 1} if probed is not None else {}
        else:
            plan = self._planner.plan(want, now)
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

    def _take_claims(
        self, claims: list[tuple[str, int, Call[ClaimReply | None]]], permit: Permit
    ) -> None:
        ctx = self.ctx
        tickets: list[Ticket] = []
        asked = got = 0
        for queue, n, call in claims:
            reply = call.value
            if reply is None:  # no lease with time left: the supervisor must register again
                self._refused_at = self._claim_renewals
                ctx.board.header.lost_lease = 1
                continue
            raws = reply.jobs
            if reply.wait > 0:  # its rate limit: not dry, just not yet
                self._planner.pause(queue, time.monotonic() + reply.wait)
                self._rate_limited[queue].inc()
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
            if self._dry:  # not for a paused queue: it has work, its waker would spin
                self._wakers.arm(skip=set(self._planner.paused))
        self._check_done(tickets)
        if tickets:
            crash_point("claimed")
            self._hand_out(tickets)

    def _hand_out(self, tickets: list[Ticket]) -> None:
        """Queue claimed jobs for the slots; a job that has crashed a worker before waits to
        run alone (``_isolate_next``)."""
        with self._cond:
            for ticket in tickets:
                job = ticket.claimed.job
                if job is not None and job.crashes and not ticket.skip:
                    self.ctx.board.isolate(ticket.index, waiting=True)
                    self._suspects.append(ticket)
                else:
                    self._work.append(ticket)
            self._cond.notify(len(self._work))

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
        for queue, group in by_queue(keyed).items():
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
        self._reconnect.succeeded()


def _claim(known: Counter[bytes], raw: bytes) -> bool:
    """Take one ``raw`` from ``known``; False when there is none left."""
    if known[raw] <= 0:
        return False
    known[raw] -= 1
    return True
