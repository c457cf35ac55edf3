"""Shared test helpers: waiting on conditions, running roles in threads or processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

from jobqueue.config import Settings
from jobqueue.engine import Engine, Inspector, Stats
from jobqueue.observe.metrics import Metrics
from jobqueue.roles.reaper import Reaper
from jobqueue.roles.worker import WorkerProcess

REPO = Path(__file__).resolve().parents[1]

# Every series shared/design.md names, as exposed (counters with their _total suffix).
DESIGN_SERIES = (
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
def running_worker(settings: Settings, with_reaper: bool = False) -> Iterator[WorkerProcess]:
    """A WorkerProcess (and optionally a Reaper) in threads, stopped gracefully on exit."""
    engine = Engine.from_settings(settings)
    stop = threading.Event()
    metrics = Metrics()
    worker = WorkerProcess(settings, engine, metrics, stop)
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


def write_config(path: Path, settings: Settings) -> Path:
    path.write_text(yaml.safe_dump(settings.model_dump(mode="json")))
    return path


def spawn(role: str, config: Path, **env: str) -> subprocess.Popen[bytes]:
    """A real ``jobqueue --role=ROLE`` process (python -m, so no install step is assumed).

    Its stderr goes to a file beside the config (a pipe nobody reads would fill and block it).
    """
    environment = {**os.environ, "PYTHONPATH": str(REPO), **env}
    log_path = config.parent / f"{role}-{time.monotonic_ns()}.log"
    with log_path.open("wb") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "jobqueue", f"--role={role}", f"--config={config}"],
            env=environment,
            stdout=subprocess.DEVNULL,
            stderr=log,
            start_new_session=True,
        )


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
