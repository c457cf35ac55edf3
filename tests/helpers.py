"""Shared test helpers: waiting on conditions, running roles in threads or processes."""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import yaml

from jobqueue.config import Settings
from jobqueue.engine import Engine, Inspector, Stats
from jobqueue.observe.logs import get_logger
from jobqueue.observe.metrics import Metrics
from jobqueue.roles.reaper import Reaper
from jobqueue.roles.worker.context import WorkerContext
from jobqueue.roles.worker.forkserver import worker_context
from jobqueue.roles.worker.hub import Hub
from jobqueue.roles.worker.leases import LeaseKeeper, Tenant
from jobqueue.roles.worker.process import ProcessSpec, build, run
from jobqueue.roles.worker.scoreboard import Scoreboard
from jobqueue.roles.worker.supervisor import Supervisor

REPO = Path(__file__).resolve().parents[1]

# Every series shared/design.md names, as exposed (counters with their _total suffix).
DESIGN_SERIES = tuple(
    f"jobqueue_{name}"  # the design's names are the suffixes of jobqueue_-prefixed series
    for name in (
        "jobs_produced_total",
        "jobs_consumed_total",
        "jobs_completed_total",
        "jobs_failed_total",
        "jobs_retried_total",
        "jobs_dead_letter_total",
        "job_processing_duration_seconds",
        "queue_length",
        "worker_active",
        "circuit_breaker_state",
        "circuit_breaker_trips_total",
        "reaper_recovered_total",
        "jobs_inflight",
    )
)


def wait_for(condition: Callable[[], Any], timeout: float = 20.0, interval: float = 0.02) -> Any:
    """Poll until ``condition()`` is truthy; fail the test with a clear message on timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s: {condition}")


def stats_of(settings: Settings, engine: Engine) -> Stats:
    labels = {p: settings.worker.queue_of(p) for p in settings.worker.priorities}
    return Inspector(engine).stats(labels)


def settled(settings: Settings, engine: Engine, expected: int) -> bool:
    """All ``expected`` jobs have finished: completed or dead, nothing pending or in flight."""
    s = stats_of(settings, engine)
    busy = sum(q.pending + q.scheduled + q.processing for q in s.queues.values())
    return busy == 0 and s.completed + s.dead_letter >= expected


@contextmanager
def running_worker(settings: Settings, with_reaper: bool = False) -> Iterator[Supervisor]:
    """A worker supervisor in a thread of the test (its worker processes are real processes,
    as in production), optionally a Reaper too; stopped gracefully on exit."""
    engine = Engine.from_settings(settings)
    stop = threading.Event()
    metrics = Metrics(processes_dir=worker_context()[1])
    worker = Supervisor(settings, engine, metrics, stop)
    threads = [threading.Thread(target=worker.run, daemon=True)]
    if with_reaper:
        threads.append(
            threading.Thread(target=Reaper(settings, engine, metrics, stop).run, daemon=True)
        )
    for thread in threads:
        thread.start()
    try:
        yield worker
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=settings.worker.shutdown_grace + 10)
        engine.close()


@dataclass
class LocalWorker:
    """A worker process's parts run in the test's own process, for tests that reach into
    the hub (inject a Redis fault at one point): the same code, without the process."""

    ctx: WorkerContext
    hub: Hub
    keeper: LeaseKeeper


@contextmanager
def local_worker(settings: Settings, worker_id: str = "local:1:0:test") -> Iterator[LocalWorker]:
    context, _ = worker_context()
    queues = tuple(settings.worker.queue_of(p) for p in settings.worker.priorities)
    board = Scoreboard(context, settings.worker.count + settings.worker.prefetch)
    spec = ProcessSpec(settings, worker_id, queues, board)
    keeper_engine = Engine.from_settings(settings)
    keeper = LeaseKeeper(keeper_engine, settings.worker.heartbeat_ttl)
    keeper.add(Tenant(worker_id, queues, board, {"pid": os.getpid()}))
    keeper.start()
    ctx, hub, slots = build(spec, get_logger("tests.local_worker").bind(worker=worker_id))
    stopping = threading.Event()
    runner = threading.Thread(target=run, args=(ctx, hub, slots, stopping), daemon=True)
    runner.start()
    try:
        yield LocalWorker(ctx, hub, keeper)
    finally:
        stopping.set()
        runner.join(timeout=settings.worker.shutdown_grace + 10)
        keeper.halt()
        keeper.join(timeout=5)
        keeper_engine.close()


def write_config(path: Path, settings: Settings) -> Path:
    path.write_text(yaml.safe_dump(settings.model_dump(mode="json")))
    return path


SPAWNED: list[subprocess.Popen[bytes]] = []  # killed, whole process groups, after each test


def spawn(role: str, config: Path, **env: str) -> subprocess.Popen[bytes]:
    """A real ``jobqueue --role=ROLE`` process (python -m, so no install step is assumed), in
    a process group of its own: its worker processes and their exec children share it.

    Its stderr goes to a file beside the config (a pipe nobody reads would fill and block it).
    """
    environment = {**os.environ, "PYTHONPATH": str(REPO), **env}
    log_path = config.parent / f"{role}-{time.monotonic_ns()}.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "jobqueue", f"--role={role}", f"--config={config}"],
            env=environment,
            stdout=subprocess.DEVNULL,
            stderr=log,
            start_new_session=True,
        )
    SPAWNED.append(proc)
    return proc


def kill_tree(proc: subprocess.Popen[bytes], sig: int = signal.SIGKILL) -> None:
    """Signal the process and everything in its group (its workers, their children)."""
    with suppress(ProcessLookupError):
        os.killpg(proc.pid, sig)
    if sig == signal.SIGKILL:
        proc.wait()


class ProcStat(NamedTuple):
    state: str  # R, S, D, T, Z...
    parent: int
    group: int


def descendants(pid: int) -> dict[int, int]:
    """Every live process below ``pid`` (fork server, worker processes, their guards and
    handlers' children), as ``{pid: parent pid}``."""
    parents = {child: p.parent for child, p in _processes().items() if p.state != "Z"}
    found: dict[int, int] = {}
    frontier = {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier}
        found.update((child, parents[child]) for child in frontier)
    return found


def group_members(pgid: int) -> list[int]:
    """The processes of process group ``pgid``, the dead ones not yet reaped included."""
    return [pid for pid, p in _processes().items() if p.group == pgid]


def alive(pid: int) -> bool:
    """Running or sleeping: neither gone nor a zombie waiting for its parent to reap it."""
    entry = _processes().get(pid)
    return entry is not None and entry.state != "Z"


def _processes() -> dict[int, ProcStat]:
    """Every process, from /proc."""
    found = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rpartition(")")[2].split()
        except OSError:
            continue
        found[int(stat.parent.name)] = ProcStat(fields[0], int(fields[1]), int(fields[2]))
    return found


def stop_process(
    proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM, timeout: float = 15
) -> int:
    if proc.poll() is None:
        proc.send_signal(sig)
    try:
        return proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise


def exit_at_once(beat: ctypes.c_double) -> None:
    """A serving process that fails as it starts (a spawned child imports it from here)."""
    raise SystemExit(3)


def beat_then_hang(beat: ctypes.c_double) -> None:
    """A serving process whose event loop turns once and then never again."""
    beat.value = time.monotonic()
    threading.Event().wait()
