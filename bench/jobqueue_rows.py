"""One timed drain by jobqueue's own worker: enqueue the jobs (not timed), write a worker config,
spawn ``jobqueue --role=worker`` and time it until the ``completed`` counter reaches N.

The worker runs with ``bench/`` on ``PYTHONPATH`` so ``callable: "workloads:<name>"`` resolves,
``worker.allowed_roots: ["/"]`` (python handlers only run jobs whose file is under an allowed
root), ``observability.metrics_port: 0`` and ``log_level: warning``; every other key is the
default. After the drain nothing may be left pending, scheduled, processing or dead, and
before the worker is stopped the RSS of its processes is read (``measure.memory``: the
supervisor, its fork server, its worker processes and their guards).

``paced_latency`` runs the same worker, idle, and sends it jobs at a steady rate instead.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import measure
import redis
import workloads
import yaml
from results import Run
from throwaway_redis import flush

from jobqueue.config import WorkerConfig
from jobqueue.engine import Engine, Inspector
from jobqueue.engine.keys import KeySchema
from jobqueue.job import Job, new_job

BENCH = Path(__file__).resolve().parent
NAMESPACE = "jobqueue"
PRIORITY = "low"  # priority and queue name of every bench job
QUEUES = {"high": "high", "low": "low"}
ENQUEUE_BATCH = 1000
POLL_INTERVAL = 0.02
STOP_GRACE = 15.0
STALL_SECONDS = 20.0  # no completion for this long: the run is given up as stalled

# Until the worker knows ``worker.processes``, a config that names it is rejected (exit 2), so
# the key is written only where it matters (> 1) unless the worker is known to accept it.
PROCESSES_KEY_KNOWN = "processes" in WorkerConfig.model_fields


@dataclass(frozen=True, slots=True)
class WorkerSetup:
    """How the jobqueue worker of one row is configured."""

    slots: int  # worker.count (per process)
    handler: Mapping[str, str]  # worker.handler
    processes: int = 1  # worker.processes
    env: Mapping[str, str] = field(default_factory=dict)  # extra environment for the worker

    def describe(self) -> str:
        if self.handler.get("type") == "python":
            handler = "py " + self.handler.get("callable", "?").rpartition(":")[2]
        else:
            handler = f"built-in {self.handler.get('type', '?')}"
        procs = f"{self.processes} proc{'s' if self.processes != 1 else ''}"
        return f"{procs} x {self.slots} slot{'s' if self.slots != 1 else ''}, {handler}"

    def config(self, url: str) -> dict[str, Any]:
        worker: dict[str, Any] = {
            "count": self.slots,
            "allowed_roots": ["/"],
            "handler": dict(self.handler),
        }
        if self.processes != 1 or PROCESSES_KEY_KNOWN:
            worker["processes"] = self.processes
        return {
            "redis": {"url": url, "namespace": NAMESPACE},
            "worker": worker,
            "observability": {"metrics_port": 0, "log_level": "warning"},
        }


@dataclass(frozen=True, slots=True)
class Waited:
    done: int
    first: tuple[float, int] | None  # (perf_counter, done) when completions were first seen
    end: float
    why: str  # "done" | "timeout" | "stalled" | "exited"


def drain(url: str, workload: str, setup: WorkerSetup, jobs: Sequence[Job], timeout: float) -> Run:
    """Enqueue ``jobs`` in order (the first enqueued is the first claimed) and time a drain."""
    run = Run(workload, "jobqueue", "jobqueue", len(jobs), setup.describe())
    flush(url)
    engine = Engine(redis.Redis.from_url(url), KeySchema(NAMESPACE))
    try:
        started = time.perf_counter()
        for start in range(0, len(jobs), ENQUEUE_BATCH):
            engine.enqueue_many([(job, PRIORITY) for job in jobs[start : start + ENQUEUE_BATCH]])
        run.enqueue_seconds = round(time.perf_counter() - started, 3)
        waiting = engine.pending_length(PRIORITY)
        if waiting != len(jobs):
            run.error = f"{waiting} jobs waiting after enqueueing {len(jobs)}"
            return run
        _time_worker(run, url, setup, Inspector(engine), timeout)
    finally:
        engine.close()
    return run


@dataclass(slots=True)
class Spawned:
    """A running jobqueue worker: its process, when it was spawned, and (once stopped) its
    exit code and the end of its log."""

    process: subprocess.Popen[bytes]
    t0: float  # perf_counter at spawn
    code: int | None = None
    tail: str = ""

    def last_line(self) -> str:
        lines = [line.strip() for line in self.tail.splitlines() if line.strip()]
        return lines[-1] if lines else "the worker logged nothing"


@contextlib.contextmanager
def spawned_worker(url: str, setup: WorkerSetup, run: Run) -> Iterator[Spawned]:
    """``jobqueue --role=worker`` with the row's config, stopped (SIGTERM, then SIGKILL to its
    group) when the block ends; ``run.spawned_at`` is set to the wall-clock spawn time."""
    with _config_file(setup.config(url)) as config_path, tempfile.TemporaryFile() as log:
        command = [_jobqueue_binary(), "--role=worker", "--config", config_path]
        run.spawned_at = time.time()
        worker = Spawned(
            subprocess.Popen(
                command,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=_worker_env(setup),
                start_new_session=True,  # a supervisor's children too, so they can be killed
            ),
            time.perf_counter(),
        )
        try:
            yield worker
        finally:
            worker.code = _stop(worker.process)
            worker.tail = _tail(log)


def _time_worker(
    run: Run, url: str, setup: WorkerSetup, inspector: Inspector, timeout: float
) -> None:
    with spawned_worker(url, setup, run) as worker:
        waited = _wait_completed(inspector, worker.process, run.jobs, worker.t0, timeout)
        if waited.done >= run.jobs:  # idle now; measured before it is stopped
            run.details["memory"] = measure.memory(worker.process.pid)
    t0 = worker.t0
    run.seconds = round(waited.end - t0, 3)
    if waited.first is not None:
        run.startup_seconds, run.first_done = round(waited.first[0] - t0, 3), waited.first[1]
    if waited.done >= run.jobs:
        run.jobs_per_sec = round(run.jobs / (waited.end - t0), 1)
        run.error = _leftovers(inspector, run.jobs)
    else:
        _failed(run, waited, worker, run.jobs)


def _failed(run: Run, waited: Waited, worker: Spawned, wanted: int) -> None:
    progress = f"{waited.done}/{wanted} completed after {waited.end - worker.t0:.1f}s"
    if waited.why == "exited":
        run.error = f"worker exited {worker.code} ({progress}): {worker.last_line()}"
    else:
        run.error = f"{waited.why}: {progress}; worker exit {worker.code}: {worker.last_line()}"
    run.log_tail = worker.tail


def paced_latency(url: str, setup: WorkerSetup, rate: float, count: int, timeout: float) -> Run:
    """A worker with idle slots; once it has run one probe job, ``count`` jobs enqueued with
    ``Engine.enqueue`` one at a time at ``rate`` per second (``measure.paced``), each carrying
    its send time in an extra job field, ``sent_at``, set just before the call. The handler
    (``workloads:latency``) records when it started; the row waits until all completed."""
    run = Run("latency", "jobqueue", "jobqueue", count, setup.describe())
    flush(url)
    jobs = iter([new_job(f"/bench/l{i}.dat", PRIORITY) for i in range(count + 1)])
    engine = Engine(redis.Redis.from_url(url), KeySchema(NAMESPACE))
    inspector = Inspector(engine)

    def send(sent: float) -> None:
        job = next(jobs)
        job.sent_at = sent  # an extra field (Job allows them), carried in the payload
        engine.enqueue(job, PRIORITY)

    try:
        with spawned_worker(url, setup, run) as worker:
            send(time.time())  # the probe: the worker is up once it ran
            waited = _wait_completed(inspector, worker.process, 1, worker.t0, timeout)
            if waited.why == "done":
                run.details.update(measure.paced(send, rate, count))
                waited = _wait_completed(inspector, worker.process, count + 1, worker.t0, timeout)
        if waited.why != "done":
            _failed(run, waited, worker, count + 1)
        else:
            run.seconds = float(run.details["send_seconds"])
            run.jobs_per_sec = float(run.details["send_rate"])
            run.error = _leftovers(inspector, count + 1)
    finally:
        engine.close()
    return run


def _jobqueue_binary() -> str:
    beside = Path(sys.executable).parent / "jobqueue"
    if beside.exists():
        return str(beside)
    return shutil.which("jobqueue") or "jobqueue"


@contextlib.contextmanager
def _config_file(config: dict[str, Any]) -> Iterator[str]:
    handle = tempfile.NamedTemporaryFile(  # noqa: SIM115 - closed below, path outlives it
        "w", prefix="jq-bench-", suffix=".yaml", delete=False
    )
    with handle:
        yaml.safe_dump(config, handle, sort_keys=False)
    try:
        yield handle.name
    finally:
        os.unlink(handle.name)


def _worker_env(setup: WorkerSetup) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("JOBQUEUE_")}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(BENCH), env.get("PYTHONPATH")) if p)
    env[workloads.ITERATIONS_ENV] = str(workloads.BURN_ITERATIONS)  # no calibrating in workers
    env.update(setup.env)
    return env


def _tail(log: IO[bytes]) -> str:
    log.seek(0)
    return log.read()[-3000:].decode(errors="replace")


def _wait_completed(
    inspector: Inspector, worker: subprocess.Popen[bytes], count: int, t0: float, timeout: float
) -> Waited:
    first: tuple[float, int] | None = None
    last_done, last_change = 0, t0
    while True:
        done = inspector.stats(QUEUES).completed
        now = time.perf_counter()
        if done and first is None:
            first = (now, done)
        if done != last_done:
            last_done, last_change = done, now
        why = _verdict(done >= count, now - t0 > timeout, now - last_change, worker)
        if why:
            return Waited(done, first, now, why)
        time.sleep(POLL_INTERVAL)


def _verdict(all_done: bool, timed_out: bool, idle: float, worker: subprocess.Popen[bytes]) -> str:
    """Why the wait ends now, or "" to keep waiting."""
    if all_done:
        return "done"
    if timed_out:
        return "timeout"
    if idle > STALL_SECONDS:
        return "stalled"
    return "exited" if worker.poll() is not None else ""


def _stop(process: subprocess.Popen[bytes]) -> int | None:
    """SIGTERM (the worker's graceful stop), SIGKILL to its whole group after STOP_GRACE; then
    whatever its group still holds (a supervisor's stray children) is killed."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=STOP_GRACE)
        except subprocess.TimeoutExpired:
            _kill_group(process.pid)
            process.wait()
    _kill_group(process.pid)
    return process.returncode


def _kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


def _leftovers(inspector: Inspector, count: int) -> str | None:
    """After a drain: nothing may be left pending, scheduled, processing or dead."""
    stats = inspector.stats(QUEUES)
    left = {
        "pending": sum(q.pending for q in stats.queues.values()),
        "scheduled": sum(q.scheduled for q in stats.queues.values()),
        "processing": sum(q.processing for q in stats.queues.values()),
        "dead": stats.dead_letter,
    }
    problems = [f"{n} {what}" for what, n in left.items() if n]
    if stats.completed != count:
        problems.append(f"completed counter {stats.completed} != {count}")
    return "after the drain: " + ", ".join(problems) if problems else None
