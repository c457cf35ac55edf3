"""Runs a role by name in this process: connect, install signal handlers, start the metrics
endpoint, run until signalled (or, for a producer pass, until done), return an exit code."""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from typing import Any

from jobqueue.config import Settings
from jobqueue.engine import Engine
from jobqueue.observe.logs import get_logger
from jobqueue.observe.metrics import Metrics
from jobqueue.observe.server import start_server
from jobqueue.roles.reaper import Reaper
from jobqueue.roles.sampler import redis_ready, start_sampler
from jobqueue.roles.signals import on_signals
from jobqueue.roles.worker.forkserver import worker_context
from jobqueue.roles.worker.supervisor import Supervisor

log: Any = get_logger("jobqueue.runner")


def install_signal_handlers(stop: threading.Event, supervisor: Supervisor | None = None) -> None:
    """The first SIGTERM or SIGINT asks for a graceful stop (running jobs finish, within
    ``shutdown_grace``) and says how to skip it; a second one stops the worker processes at
    once, as the end of the grace does: their running jobs go back to their queues, no
    attempt charged. Neither ever kills a job mid-ack."""

    def handle(signum: int) -> None:
        name = signal.Signals(signum).name
        if stop.is_set():
            log.warning("stopping now: running jobs go back to their queues", signal=name)
            if supervisor is not None:
                supervisor.stop_now()
            return
        if supervisor is None:
            log.info("signal received; stopping", signal=name)
        else:
            running = supervisor.running_jobs()
            log.info(
                f"finishing {running} running jobs; press Ctrl-C again to stop now",
                signal=name,
                running_jobs=running,
            )
        stop.set()

    on_signals([signal.SIGTERM, signal.SIGINT], handle)


@contextmanager
def serve_observability(settings: Settings, engine: Engine, metrics: Metrics) -> Iterator[None]:
    """/metrics, /healthz and /readyz on ``metrics_port`` (0: off), and the one
    ``queue_length`` sampler of this process, for as long as the role runs."""
    obs = settings.observability
    server = start_server(metrics.registry, redis_ready(engine), obs.metrics_host, obs.metrics_port)
    sampler = start_sampler(settings, engine, metrics)
    try:
        yield
    finally:
        if sampler is not None:
            sampler.close()
        if server is not None:
            server.stop()


def run(role: str, settings: Settings, stop: threading.Event | None = None) -> int:
    """Run ``role`` until it finishes or ``stop`` is set (by a signal, or by the caller)."""
    engine = Engine.connect(settings)
    policy = engine.eviction_policy()
    if policy not in (None, "noeviction"):
        log.warning(
            "Redis may evict queue keys when memory runs short, and jobs would vanish "
            "without an error: set maxmemory-policy noeviction",
            maxmemory_policy=policy,
        )
    log.info("connected to Redis", role=role, redis=engine.target.display)
    stop = stop or threading.Event()
    processes_dir = worker_context()[1] if role in ("worker", "all") else None
    metrics = Metrics(processes_dir=processes_dir)
    metrics.declare_queues(settings.worker.queue_of(p) for p in settings.worker.priorities)
    supervisor = Supervisor(settings, engine, metrics, stop) if role in ("worker", "all") else None
    install_signal_handlers(stop, supervisor)
    runners: dict[str, Callable[[], int]] = {
        "reaper": lambda: Reaper(settings, engine, metrics, stop).run(),
        "producer": lambda: _run_producer(settings, engine, metrics, stop),
    }
    if supervisor is not None:
        runners["worker"] = supervisor.run
        runners["all"] = lambda: run_all(settings, engine, metrics, supervisor)
    try:
        with serve_observability(settings, engine, metrics):
            return runners[role]()
    finally:
        engine.close()


def _run_producer(
    settings: Settings, engine: Engine, metrics: Metrics, stop: threading.Event
) -> int:
    from jobqueue.roles.producer import run_producer  # noqa: PLC0415 - only for this role

    run_producer(settings, engine, stop, metrics)
    return 0


def run_all(settings: Settings, engine: Engine, metrics: Metrics, supervisor: Supervisor) -> int:
    """Producer pass, reaper and worker in one process (development, small deployments).

    A role that fails (a producer whose scan_dir is missing) stops the others and its error
    is raised here, once they have stopped, for the CLI to report in one line."""
    stop = supervisor.stop
    failed: list[BaseException] = []

    def guarded(role: Callable[[], object]) -> Callable[[], None]:
        def run_role() -> None:
            try:
                role()
            except BaseException as exc:
                failed.append(exc)
                stop.set()

        return run_role

    helpers = [
        threading.Thread(
            target=guarded(partial(_run_producer, settings, engine, metrics, stop)),
            name="jobqueue-producer",
            daemon=True,
        ),
        threading.Thread(
            target=guarded(Reaper(settings, engine, metrics, stop).run),
            name="jobqueue-reaper",
            daemon=True,
        ),
    ]
    for thread in helpers:
        thread.start()
    code = supervisor.run()
    for thread in helpers:
        thread.join(timeout=5)
    if failed:
        raise failed[0]
    return code
