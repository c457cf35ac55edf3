"""The worker role: ``worker.count`` slots in one process, plus a heartbeat and a promoter.

Threads, not asyncio: redis-py's sync client with hiredis is the fastest Python Redis
client, BLMOVE needs a connection per waiting slot anyway, and handlers are mostly
blocking code (subprocesses, file I/O). Batching (slot.py) keeps the GIL off the critical
path: a no-op job costs microseconds of Python and a fraction of a round trip.

Heartbeats are renewed every ``heartbeat_ttl / 3`` by their own thread for as long as the
process lives, whatever the handlers are doing, so a long job is never reaped from a live
worker. Shutdown (SIGTERM/SIGINT): stop claiming at once, give unstarted jobs back, let
running jobs finish within ``shutdown_grace``, release what is still running to the head of
its queue (no attempt counted), deregister, exit 0.
"""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from jobqueue.config import Settings
from jobqueue.engine import Engine, RedisError
from jobqueue.observe.ledger import Ledger
from jobqueue.observe.logs import get_logger
from jobqueue.observe.metrics import Metrics
from jobqueue.observe.tracing import Tracer
from jobqueue.roles.breaker import BreakerState, CircuitBreaker
from jobqueue.roles.slot import Slot, SlotContext

log: Any = get_logger("jobqueue.worker")


def make_worker_ids(count: int) -> list[str]:
    """host:pid:start:random:slot — unique across hosts, restarts and slots."""
    host = socket.gethostname().split(".")[0] or "host"
    stem = f"{host}:{os.getpid()}:{int(time.time())}:{uuid.uuid4().hex[:6]}"
    return [f"{stem}:{slot}" for slot in range(count)]


class WorkerProcess:
    """Owns the slots and the background threads of one worker process."""

    def __init__(
        self, settings: Settings, engine: Engine, metrics: Metrics, stop: threading.Event
    ) -> None:
        self.settings = settings
        self.engine = engine
        self.metrics = metrics
        self.stop = stop
        self.queues = {p: settings.worker.queue_of(p) for p in settings.worker.priorities}
        self.ledger = Ledger(settings.observability.ledger.dir)
        self.breaker = CircuitBreaker(settings.circuit_breaker, on_change=self._breaker_changed)
        tracer = Tracer(settings.observability.tracing)
        ctx = SlotContext(
            settings, engine, metrics, self.ledger, self.breaker, stop, self.queues, tracer
        )
        self.slots = [
            Slot(ctx, i, wid) for i, wid in enumerate(make_worker_ids(settings.worker.count))
        ]
        self.started = datetime.now(UTC).isoformat(timespec="seconds")
        self._background_stop = threading.Event()
        self._background: list[threading.Thread] = []

    def info(self, slot: Slot) -> dict[str, Any]:
        return {
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "started": self.started,
            "queues": list(self.queues.values()),
            "slot": slot.name,
            "breaker": self.breaker.state.label,
            "heartbeat_ttl": self.settings.worker.heartbeat_ttl,
        }

    def register_all(self) -> None:
        for slot in self.slots:
            self.engine.register(
                slot.worker_id, self.info(slot), self.settings.worker.heartbeat_ttl
            )

    def run(self) -> int:
        """Run until ``stop`` is set; return the exit code."""
        self._register_until_done()
        self._background = [
            threading.Thread(target=self._heartbeat_loop, name="jobqueue-heartbeat", daemon=True),
            threading.Thread(target=self._promote_loop, name="jobqueue-promoter", daemon=True),
        ]
        for thread in self._background + self.slots:
            thread.start()
        self.metrics.worker_active.set(len(self.slots))
        log.info("worker started", slots=len(self.slots), queues=self.queues)
        self.stop.wait()
        self._shutdown()
        self.metrics.worker_active.set(0)
        return 0

    def _register_until_done(self) -> None:
        """Registration must precede the first claim (the reaper finds work by it)."""
        delay = 0.1
        while not self.stop.is_set():
            try:
                self.register_all()
                return
            except RedisError as exc:
                log.warning("cannot register yet; retrying", error=str(exc), retry_in=delay)
                self.stop.wait(delay)
                delay = min(delay * 2, 5.0)

    def _shutdown(self) -> None:
        grace = self.settings.worker.shutdown_grace
        log.info("stopping: no new claims; finishing running jobs", grace_seconds=grace)
        self._join_slots(grace)
        for slot in self.slots:
            if slot.is_alive():
                self._abandon(slot)
        # A slot that was blocked in BLMOVE may yet receive a job: let it return (at most
        # claim_timeout) and release it, before anything is deregistered or the process ends.
        self._join_slots(self.settings.worker.claim_timeout + 0.5)
        self._background_stop.set()  # no heartbeat may re-register what we deregister now
        for thread in self._background:
            thread.join(timeout=5)
        for slot in self.slots:
            self._deregister(slot)
        self.ledger.close()
        log.info("worker stopped")

    def _join_slots(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        for slot in self.slots:
            slot.join(max(0.0, deadline - time.monotonic()))

    def _abandon(self, slot: Slot) -> None:
        try:
            released = slot.abandon()
            log.warning(
                "grace expired; released running jobs", worker=slot.worker_id, released=released
            )
        except RedisError as exc:
            log.warning(
                "could not release jobs; the reaper will", worker=slot.worker_id, error=str(exc)
            )

    def _deregister(self, slot: Slot) -> None:
        """Leave the registry only with empty hands; otherwise the reaper must see us die."""
        try:
            if slot.holds_nothing():
                self.engine.deregister(slot.worker_id, by_self=True)
            else:
                log.warning(
                    "jobs left in processing list; leaving them to the reaper",
                    worker=slot.worker_id,
                )
        except RedisError as exc:
            log.warning("could not deregister", worker=slot.worker_id, error=str(exc))

    # -- background threads --------------------------------------------------------------

    def _heartbeat_loop(self) -> None:
        ttl = self.settings.worker.heartbeat_ttl
        ids = [slot.worker_id for slot in self.slots]
        while not self._background_stop.wait(ttl / 3):
            try:
                renewed = self.engine.renew(ids, ttl)
                if not all(renewed):
                    log.warning("heartbeat had expired; registering again")
                    self.register_all()
            except RedisError as exc:
                log.warning("heartbeat failed; will retry", error=str(exc))
            except Exception:  # the heartbeat must outlive any bug: the slots depend on it
                log.exception("heartbeat error; will retry")

    def _promote_loop(self) -> None:
        interval = self.settings.worker.promote_interval
        while not self.stop.wait(interval):
            try:
                for queue in self.queues.values():
                    while self.engine.promote(queue, 500) == 500:
                        pass
            except RedisError as exc:
                log.warning("promoter failed; will retry", error=str(exc))
            except Exception:
                log.exception("promoter error; will retry")

    def _breaker_changed(self, old: BreakerState, new: BreakerState) -> None:
        self.metrics.circuit_breaker_state.set(new.value)
        if new is BreakerState.OPEN:
            self.metrics.circuit_breaker_trips.inc()
        log.warning("circuit breaker changed", old=old.label, new=new.label)
        try:
            self.register_all()  # so `admin stats` and `workers` show the new state
        except RedisError as exc:
            log.warning("could not publish breaker state", error=str(exc))
