"""Python handlers used by the tests (loaded by ``worker.handler.callable``)."""

from __future__ import annotations

import asyncio
import os
import threading
import time

from jobqueue.job import Job

CALLS: list[Job] = []
_lock = threading.Lock()


def record(job: Job) -> None:
    """Remember the job; sleep ``sleep_ms`` when the job carries it."""
    time.sleep(getattr(job, "sleep_ms", 0) / 1000)
    with _lock:
        CALLS.append(job)
    if "fail" in job.filepath:
        raise RuntimeError(f"refusing {job.filepath}")


def append_to_log(job: Job) -> None:
    """For subprocess tests: one line per execution in $JQ_TEST_LOG (O_APPEND, one write)."""
    time.sleep(getattr(job, "sleep_ms", 0) / 1000)
    fd = os.open(os.environ["JQ_TEST_LOG"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, f"{job.id}\n".encode())
    finally:
        os.close(fd)


def always_fail(job: Job) -> None:
    raise RuntimeError("downstream is down")


def sleep_long(job: Job) -> None:
    time.sleep(60)


async def async_sleep(job: Job) -> None:
    await asyncio.sleep(getattr(job, "sleep_ms", 0) / 1000)


def exit_process(job: Job) -> None:
    """A script-style handler bailing out with sys.exit: the job's failure, not the slot's."""
    raise SystemExit(3)
