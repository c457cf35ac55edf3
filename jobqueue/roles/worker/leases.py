"""The lease keeper: a thread of the supervisor that registers its worker processes and
renews their heartbeats and queue leases every ``heartbeat_ttl / 3``.

It runs in the supervisor, which runs no handler code, so no handler can starve it: not one
that holds the GIL for minutes in a C call, not one that blocks every thread of its process.
It renews a worker process only while that process is running: one that is stopped
(SIGSTOP, a debugger) lets its lease lapse, so its jobs go to others after the TTL as if it
had died; when it runs again its renewal fails and the keeper registers it again under a new
token before it may claim (engine/registry.py explains why the token matters).

Each renewal that Redis confirms is written to the process's scoreboard header: the time it
was sent (the lease lives at least ``heartbeat_ttl`` from then) and, after a new
registration, a new generation. The worker process starts a claimed job only under a fresh
lease of the generation it was claimed under.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

from jobqueue.engine import Engine, Lease, Reconnect, RedisError
from jobqueue.observe.logs import get_logger
from jobqueue.roles.worker.breaker import BreakerState
from jobqueue.roles.worker.kernel import is_stopped
from jobqueue.roles.worker.scoreboard import Scoreboard

log: Any = get_logger("jobqueue.leases")


@dataclass(eq=False)
class Tenant:
    """A worker process whose lease the keeper holds."""

    worker_id: str
    queues: tuple[str, ...]
    board: Scoreboard
    info: dict[str, Any]
    lease: Lease | None = None
    pid: int | None = None
    published: dict[str, Any] = field(default_factory=dict)

    def current_info(self) -> dict[str, Any]:
        breaker = BreakerState(self.board.header.breaker).label
        return {**self.info, "pid": self.pid, "breaker": breaker}


class LeaseKeeper(threading.Thread):
    """Registers, renews and publishes the leases of a supervisor's worker processes."""

    def __init__(self, engine: Engine, ttl: float) -> None:
        super().__init__(name="jobqueue-leases", daemon=True)
        self.engine = engine
        self.ttl = ttl
        self._tenants: dict[str, Tenant] = {}
        self._lock = threading.Lock()
        self._poke = threading.Event()
        self._halt = threading.Event()
        self._reconnect = Reconnect(engine.outage, "jobqueue.leases", cap=ttl / 3)

    def add(self, tenant: Tenant) -> None:
        """Hold this process's lease from now on (registered by the keeper's thread at once:
        the supervisor's own thread never waits on Redis for it)."""
        with self._lock:
            self._tenants[tenant.worker_id] = tenant
        self._poke.set()

    def remove(self, worker_id: str) -> None:
        """Stop renewing this process's lease (it exited and its jobs were settled)."""
        with self._lock:
            self._tenants.pop(worker_id, None)

    def poke(self) -> None:
        """Renew now: a worker process saw its claim refused for want of a lease, or this
        process or a worker process saw Redis back after an outage."""
        self._poke.set()

    def halt(self) -> None:
        """Stop after the current renewal (join it to wait)."""
        self._halt.set()
        self._poke.set()

    def _holds(self, tenant: Tenant) -> bool:
        with self._lock:
            return self._tenants.get(tenant.worker_id) is tenant

    def run(self) -> None:
        # When any loop of this process sees Redis back after an outage, renew at once: a
        # Redis that came back empty has lost the registrations, and the renewal that finds
        # them gone registers again, instead of up to ttl/3 later.
        forget = self.engine.outage.when_back(self.poke)
        try:
            while not self._halt.is_set():
                with self._lock:
                    tenants = list(self._tenants.values())
                try:
                    self._renew_all(tenants)
                    self._reconnect.succeeded()
                    wait = self.ttl / 3
                except RedisError as exc:
                    wait = self._reconnect.failed(exc)
                self._poke.wait(wait)
                self._poke.clear()
        finally:
            forget()

    def _register(self, tenant: Tenant) -> None:
        sent = time.monotonic()
        info = tenant.current_info()
        tenant.lease = self.engine.registry.register(
            tenant.worker_id, info, tenant.queues, self.ttl
        )
        tenant.published = info
        tenant.board.registered(sent, tenant.lease.token)

    def _renew_all(self, tenants: list[Tenant]) -> None:
        for tenant in tenants:
            if tenant.lease is None:
                self._register(tenant)
        running = [t for t in tenants if t.lease is not None and not is_stopped(t.pid)]
        sent = time.monotonic()
        alive = self.engine.registry.renew([t.lease for t in running if t.lease], self.ttl)
        for tenant in running:
            if alive[tenant.worker_id]:
                tenant.board.confirm(sent)
                self._publish(tenant)
            elif self._holds(tenant):  # not one the supervisor has just let go
                log.warning(
                    "worker lease had lapsed; registering it again", worker=tenant.worker_id
                )
                self._register(tenant)

    def _publish(self, tenant: Tenant) -> None:
        info = tenant.current_info()
        if info != tenant.published and tenant.lease is not None:
            self.engine.registry.publish(tenant.lease, info)
            tenant.published = info


class FallbackRenewal:
    """A worker process renewing its own lease when its supervisor is late.

    The supervisor renews every ``ttl/3``; when the last confirmed renewal is older than
    ``ttl/2`` it is late (stopped, starved of CPU), and a worker process that runs on would
    have its jobs reaped and run again elsewhere while it still runs them. So the process
    renews for itself, from its main thread, until the supervisor is back. It never
    registers: a lease that has lapsed is the supervisor's to renew under a new token.
    A stopped worker process cannot renew at all, which is as intended: its jobs go to others.
    """

    def __init__(
        self, engine: Engine, worker_id: str, queues: tuple[str, ...], board: Scoreboard, ttl: float
    ) -> None:
        self.engine = engine
        self.worker_id = worker_id
        self.queues = queues
        self.board = board
        self.ttl = ttl
        self._tried = 0.0

    def check(self) -> None:
        now = time.monotonic()
        if now - self.board.confirmed_at < self.ttl / 2 or now - self._tried < self.ttl / 6:
            return
        self._tried = now
        token = self.board.token
        if not token:
            return
        try:
            alive = self.engine.registry.renew(
                [Lease(self.worker_id, token, self.queues)], self.ttl
            )
        except RedisError:
            return
        if alive.get(self.worker_id):
            self.board.confirm(now)
            log.warning(
                "supervisor late: renewed this worker process's own lease", worker=self.worker_id
            )
