"""A worker process: one hub, ``worker.count`` slots and one waker per queue.

The supervisor (supervisor.py) starts it, holds its lease and watches its scoreboard; the
process itself never registers or renews anything, so nothing a handler does in here (hold
the GIL, block every thread, crash the interpreter) can stop its heartbeat from being
renewed, or keep the supervisor from acting on it.

SIGTERM drains it: no more claims, every job not yet started is handed back at once, running
jobs finish and are settled, then it exits 0. SIGINT is ignored (the supervisor decides).
If the supervisor dies, the kernel kills this process too (PR_SET_PDEATHSIG on Linux); one
that starts after its supervisor died, or outlives it by any other path, exits when it sees
it is orphaned.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from dataclasses import dataclass
from typing import Any

from jobqueue.config import Settings
from jobqueue.engine import Engine, RedisError, jittered_backoff
from jobqueue.errors import JobQueueError
from jobqueue.observe.ledger import Ledger
from jobqueue.observe.logs import configure_logging, get_logger
from jobqueue.observe.metrics import Metrics
from jobqueue.observe.tracing import Tracer
from jobqueue.roles.signals import on_signals
from jobqueue.roles.worker.breaker import BreakerState, CircuitBreaker
from jobqueue.roles.worker.context import WorkerContext
from jobqueue.roles.worker.guard import Guard
from jobqueue.roles.worker.hub import Hub
from jobqueue.roles.worker.kernel import die_with_parent, orphaned
from jobqueue.roles.worker.leases import FallbackRenewal
from jobqueue.roles.worker.scoreboard import Scoreboard
from jobqueue.roles.worker.slot import Slot

EXIT_CRASHED = 70  # the hub died of a bug (EX_SOFTWARE); the supervisor recovers and restarts
EXIT_ORPHANED = 1  # the supervisor is gone: its jobs are the reaper's to recover


@dataclass(frozen=True)
class ProcessSpec:
    """Everything a worker process is started with (pickled into it)."""

    settings: Settings
    worker_id: str
    queues: tuple[str, ...]
    board: Scoreboard


def serve(spec: ProcessSpec) -> None:
    """The process's entry point (a multiprocessing target): exits with its status."""
    sys.exit(_serve(spec))


def _serve(spec: ProcessSpec) -> int:
    die_with_parent()
    if orphaned():
        return EXIT_ORPHANED
    os.setpgid(0, 0)  # a group of its own, which the guard kills when the process is gone
    guard = Guard()
    guard.watch(os.getpgrp())
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    stopping = threading.Event()
    on_signals([signal.SIGTERM], lambda _signum: stopping.set())
    obs = spec.settings.observability
    configure_logging(obs.log_level, obs.log_format)
    log: Any = get_logger("jobqueue.worker").bind(worker=spec.worker_id, pid=os.getpid())
    backoff, failures = jittered_backoff(), 0
    while True:
        try:
            ctx, hub, slots = build(spec, log, guard)
            break
        except JobQueueError as exc:
            log.error("worker process cannot start", error=str(exc))
            return exc.exit_code
        except OSError as exc:  # e.g. its supervisor exited while it started, taking the
            if orphaned():  # metrics folder along: nothing to say, nobody to say it to
                return EXIT_ORPHANED
            log.error("worker process cannot start", error=f"{type(exc).__name__}: {exc}")
            return 1
        except RedisError as exc:  # a Cluster client needs a node to answer at once
            failures += 1
            if failures == 1:
                log.warning("worker process waits for Redis to start", error=str(exc))
            if stopping.wait(backoff(failures)):
                return 0
    return run(ctx, hub, slots, stopping)


def build(
    spec: ProcessSpec, log: Any, guard: Guard | None = None
) -> tuple[WorkerContext, Hub, list[Slot]]:
    """The parts of a worker process; raises ConfigError when its handler cannot load."""
    ctx = _context(spec, log)
    ctx.guard = guard
    hub = Hub(ctx, spec.settings.worker.count)
    return ctx, hub, [Slot(ctx, hub, i) for i in range(spec.settings.worker.count)]


def _context(spec: ProcessSpec, log: Any) -> WorkerContext:
    settings = spec.settings
    metrics = Metrics()
    metrics.declare_queues(spec.queues)
    metrics.set_breaker_state(BreakerState.CLOSED.label)  # where every breaker starts

    def breaker_changed(old: BreakerState, new: BreakerState) -> None:
        metrics.set_breaker_state(new.label)
        if new is BreakerState.OPEN:
            metrics.circuit_breaker_trips.inc()
        spec.board.header.breaker = new.value  # the supervisor publishes it in the registry
        log.warning("circuit breaker changed", old=old.label, new=new.label)

    return WorkerContext(
        settings=settings,
        engine=Engine.from_settings(settings),
        worker_id=spec.worker_id,
        queues=list(spec.queues),
        board=spec.board,
        metrics=metrics,
        ledger=Ledger(settings.observability.ledger.dir),
        breaker=CircuitBreaker(settings.circuit_breaker, on_change=breaker_changed),
        tracer=Tracer(settings.observability.tracing),
        log=log,
    )


def _renew_now(ctx: WorkerContext) -> None:
    """Redis is back after an outage, maybe empty, without this process's registration:
    ask the supervisor to renew at once (it registers again if the renewal finds it gone),
    rather than at its next renewal, up to ttl/3 later."""
    ctx.board.header.lost_lease = 1


def run(ctx: WorkerContext, hub: Hub, slots: list[Slot], stopping: threading.Event) -> int:
    """Run until ``stopping`` is set (then drain) or the hub dies; the exit status."""
    crashed = threading.Event()

    def run_hub() -> None:
        try:
            hub.run()
        except BaseException:
            ctx.log.exception("worker hub crashed; the supervisor will settle its jobs")
            crashed.set()
            hub.stop()

    hub_thread = threading.Thread(target=run_hub, name="jobqueue-hub", daemon=True)
    for thread in [*slots, hub_thread]:
        thread.start()
    ctx.metrics.worker_active.set(len(slots))
    ctx.engine.outage.when_back(lambda: _renew_now(ctx))
    ctx.board.header.ready = 1
    ctx.log.info("worker process started", slots=len(slots), queues=ctx.queues)
    lease = FallbackRenewal(
        ctx.engine, ctx.worker_id, tuple(ctx.queues), ctx.board, ctx.settings.worker.heartbeat_ttl
    )
    while hub_thread.is_alive():
        if not stopping.is_set():
            stopping.wait(0.2)
            if stopping.is_set():
                ctx.log.info("stopping: handing back unstarted jobs, finishing running ones")
                hub.stop()
        else:
            hub_thread.join(0.2)
        if orphaned():  # what PR_SET_PDEATHSIG would have done; never renew for a lost owner
            ctx.log.error("worker process orphaned: its supervisor is gone; exiting")
            os._exit(EXIT_ORPHANED)
        lease.check()
    for slot in slots:
        slot.join(timeout=0 if crashed.is_set() else None)
    ctx.metrics.worker_active.set(0)
    ctx.ledger.close()
    ctx.engine.close()
    ctx.log.info("worker process stopped")
    return EXIT_CRASHED if crashed.is_set() else 0
