"""The job handlers the bench's jobqueue workers run (``worker.handler.type: python``).

The worker imports this module by name (``callable: "workloads:noop"``, with ``bench/`` on
``PYTHONPATH``), so it stays light: standard library only (and measure.py, likewise), no
Redis, no rich. Each handler takes the ``jobqueue.job.Job`` the worker hands it.

* ``noop``: counts the job in an in-process counter and returns (a real Python call, unlike
  the built-in ``type: noop``).
* ``sleep10ms``: ``time.sleep(0.01)``, an I/O-bound job.
* ``burn``: about 5 ms of pure-Python arithmetic, a CPU-bound job. The loop's iteration count
  comes from ``BENCH_BURN_ITERATIONS``: the bench process calibrates once, when it imports this
  module, and hands the same count to every worker it starts, so every row does the same work
  per job and no worker spends its start-up calibrating. Without the variable, importing this
  module calibrates.
* ``timed``: sleeps ``job.sleep_ms`` (0 when absent) and appends ``"<id> <kind> <event>
  <time.time()>"`` lines (event ``start`` and ``done``) to the file named by
  ``BENCH_EVENTS_FILE``, one ``os.write`` per line on an ``O_APPEND`` descriptor, so lines of
  concurrent slots never interleave and nothing goes through Redis.
* ``latency``: records ``job.sent_at`` (the bench's ``time.time()`` just before the enqueue
  call, an extra field of the job) and its own start, as ``"<sent> <started>"`` in the file
  named by ``BENCH_LATENCY_FILE`` (``measure.record_latency``, shared with the peers' task).
"""

from __future__ import annotations

import itertools
import os
import statistics
import time
from typing import TYPE_CHECKING

import measure

if TYPE_CHECKING:
    from jobqueue.job import Job

ITERATIONS_ENV = "BENCH_BURN_ITERATIONS"
EVENTS_ENV = "BENCH_EVENTS_FILE"
BURN_TARGET_SECONDS = 0.005
CALIBRATION_MIN_SECONDS = 0.05  # time at least this much when sizing the loop
CALIBRATION_SAMPLES = 15

_completed = itertools.count(1)  # next() on it is atomic under the GIL


def noop(job: Job) -> None:
    """Count the job and return."""
    del job
    next(_completed)


def sleep10ms(job: Job) -> None:
    """Block for 10 ms without holding the GIL."""
    del job
    time.sleep(0.01)


def spin(iterations: int) -> int:
    """Pure-Python arithmetic, holding the GIL throughout."""
    total = 0
    for i in range(iterations):
        total += i * i % 7
    return total


def _time_spin(iterations: int) -> float:
    started = time.perf_counter()
    spin(iterations)
    return time.perf_counter() - started


def calibrate(target: float = BURN_TARGET_SECONDS) -> int:
    """The iteration count for which ``spin`` takes about ``target`` seconds here: grow the
    loop until one call takes CALIBRATION_MIN_SECONDS (which also warms up), scale it to the
    target, then rescale by the median of a few calls at that size."""
    iterations = 10_000
    while (elapsed := _time_spin(iterations)) < CALIBRATION_MIN_SECONDS:
        iterations *= 2
    iterations = max(1, round(iterations * target / elapsed))
    median = measure_burn_ms(iterations) / 1000
    return max(1, round(iterations * target / median))


def measure_burn_ms(iterations: int, samples: int = CALIBRATION_SAMPLES) -> float:
    """Median milliseconds of ``spin(iterations)`` over a few calls."""
    return statistics.median(_time_spin(iterations) for _ in range(samples)) * 1000


def _iterations_from_env() -> int | None:
    text = os.environ.get(ITERATIONS_ENV, "").strip()
    return int(text) if text.isdigit() and int(text) > 0 else None


BURN_ITERATIONS: int = _iterations_from_env() or calibrate()


def burn(job: Job) -> None:
    """About 5 ms of CPU (``BURN_ITERATIONS`` turns of ``spin``)."""
    del job
    spin(BURN_ITERATIONS)


def _record(job: Job, kind: str, event: str) -> None:
    path = os.environ.get(EVENTS_ENV)
    if path:
        measure.append_line(path, f"{job.id} {kind} {event} {time.time():.6f}\n")


def timed(job: Job) -> None:
    """Sleep ``job.sleep_ms`` and record when the job started and finished."""
    kind = str(getattr(job, "bench_kind", "job"))
    sleep_ms = int(getattr(job, "sleep_ms", 0))
    _record(job, kind, "start")
    if sleep_ms > 0:
        time.sleep(sleep_ms / 1000)
    _record(job, kind, "done")


def latency(job: Job) -> None:
    """Record the job's send time and this start time (the first thing it does)."""
    started = time.time()
    measure.record_latency(float(getattr(job, "sent_at", 0.0)), started)
