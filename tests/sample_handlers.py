"""Python handlers used by the tests (loaded by ``worker.handler.callable``).

Handlers run in worker processes, so they report to the test through files, never through
memory: each execution appends one JSON line to the file named by the job's ``log`` field,
else by ``$JQ_TEST_LOG`` (one ``os.write`` on an O_APPEND file, so lines from many
processes never interleave).
Jobs carry what the handler should do in extra fields: ``sleep_ms``, ``burn_s`` (hold the
GIL in one C call for about that many seconds), ``spin_s`` (run pure Python that long),
``fail`` (raise), ``poison`` (kill the worker process), ``gate`` (a path: wait until it
exists, at most GATE_MAX_S; a test that must kill a worker while it holds a job holds the
job there, rather than hoping to catch a short one).
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
import time
from pathlib import Path
from typing import Any

from jobqueue.job import Job

GATE_MAX_S = 120.0


def log_execution(job: Job, **fields: Any) -> None:
    path = getattr(job, "log", None) or os.environ.get("JQ_TEST_LOG")
    if not path:
        return
    line = {"id": job.id, "retries": job.retries, "priority": job.priority, "pid": os.getpid()}
    line["crashes"] = getattr(job, "crashes", 0)
    data = (json.dumps({**line, **fields}) + "\n").encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)


def executions(path: Path) -> list[dict[str, Any]]:
    """Every line the handlers wrote, in order; a line still being written (no newline yet,
    as a reader racing a writer can see) is left for the next read."""
    if not path.exists():
        return []
    complete = path.read_text().split("\n")[:-1]
    return [json.loads(line) for line in complete if line.strip()]


def record(job: Job) -> None:
    """Log the start, wait for the ``gate`` file, sleep ``sleep_ms``, hold the GIL
    ``burn_s``, spin ``spin_s``, log the end; fail when the job says ``fail`` or its path
    contains 'fail'; kill the whole worker process when it says ``poison``."""
    started = time.time()
    log_execution(job, event="start", t=started)
    if getattr(job, "poison", False):
        os._exit(9)
    gate = getattr(job, "gate", "")
    while gate and not os.path.exists(gate) and time.time() < started + GATE_MAX_S:
        time.sleep(0.01)
    time.sleep(getattr(job, "sleep_ms", 0) / 1000)
    burn = getattr(job, "burn_s", 0)
    if burn:
        hold_the_gil(burn)
    spin_until = started + getattr(job, "spin_s", 0)
    while time.time() < spin_until:  # pure Python, CPU-bound: the GIL changes hands
        sum(i * i for i in range(1000))
    failing = getattr(job, "fail", False) or "fail" in job.filepath
    log_execution(job, event="end", t=time.time(), started=started, failed=failing)
    if failing:
        raise RuntimeError(f"refusing {job.filepath}")


def hold_the_gil(seconds: float) -> None:
    """One C call (``sum`` over a range) that never releases the GIL, sized to take about
    ``seconds`` on this machine: no other thread of the process runs Python meanwhile."""
    probe = 2_000_000
    started = time.perf_counter()
    sum(range(probe))
    per_item = (time.perf_counter() - started) / probe
    sum(range(int(seconds / per_item)))


def threads_alive(job: Job) -> None:
    """Log how many threads this process runs (to see that hung handlers do not pile up)."""
    log_execution(job, event="threads", n=threading.active_count())


def always_fail(job: Job) -> None:
    log_execution(job, event="start", t=time.time())
    raise RuntimeError("downstream is down")


def sleep_long(job: Job) -> None:
    log_execution(job, event="start", t=time.time())
    time.sleep(60)
    log_execution(job, event="end", t=time.time())


async def async_sleep(job: Job) -> None:
    await asyncio.sleep(getattr(job, "sleep_ms", 0) / 1000)
    log_execution(job, event="end", t=time.time())


def exit_process(job: Job) -> None:
    """A script-style handler bailing out with sys.exit: the job's failure, not the slot's."""
    raise SystemExit(3)


def kill_own_process(job: Job) -> None:
    """A poison pill: takes its whole worker process down every time it runs."""
    log_execution(job, event="start", t=time.time())
    os._exit(9)


def ticking_sleep(job: Job) -> None:
    """Run for 10 s, logging a tick every 100 ms: two runs of one job that overlap in time
    show as interleaved ticks."""
    for _ in range(100):
        log_execution(job, event="tick", t=time.time())
        time.sleep(0.1)


def spawn_sleeper(job: Job) -> None:
    """Start a child process the handler never waits for, and run on."""
    import subprocess

    child = subprocess.Popen(["sleep", "300"])
    log_execution(job, event="spawned", child=child.pid)
    time.sleep(60)


def echo_payload(job: Job) -> None:
    """Log the job's kind and payload (a job that is not a file)."""
    log_execution(job, event="payload", kind=job.kind, payload=job.payload)
