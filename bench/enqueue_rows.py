"""Enqueue rates, timed in the bench process (no worker runs): jobqueue's own client and the
redis-py floors of an enqueue.

* jobqueue, ``single``: ``new_job`` + ``Engine.enqueue`` per job, one round trip each;
* jobqueue, ``batched``: ``new_job`` for a batch, then ``Engine.enqueue_many`` (one pipelined
  round trip of ``enqueue.lua`` calls), at each of ``BATCH_SIZES``;
* floors: ``LPUSH`` of one ready-made job payload per call, and a pipeline of ``FLOOR_BATCH``
  such ``LPUSH`` commands per round trip (no job building, no script: what Redis and
  redis-py cost alone).

Building the jobs is part of jobqueue's timed work, as building its message is part of a
peer's ``send``/``enqueue`` call; its share is kept in ``details["build_seconds"]``. Before
timing, one untimed enqueue opens the connection and loads the script; after, exactly N more
jobs must be waiting.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import redis
from jobqueue_rows import NAMESPACE, PRIORITY
from results import Run
from throwaway_redis import flush

from jobqueue.engine import Engine
from jobqueue.engine.keys import KeySchema
from jobqueue.job import Job, new_job

BATCH_SIZES = (100, 1000, 5000)
FLOOR_BATCH = 1000
FLOOR_KEY = "floor:pending"


def _jobs(count: int) -> list[Job]:
    return [new_job(f"/bench/e{i}.dat", PRIORITY) for i in range(count)]


def _timed(run: Run, url: str, enqueue: Callable[[Engine, int], float]) -> Run:
    """``enqueue(engine, n)`` returns the seconds it spent building jobs; the rest is sending."""
    flush(url)
    engine = Engine(redis.Redis.from_url(url), KeySchema(NAMESPACE))
    try:
        enqueue(engine, 1)
        before = engine.pending_length(PRIORITY)
        started = time.perf_counter()
        build = enqueue(engine, run.jobs)
        seconds = time.perf_counter() - started
        waiting = engine.pending_length(PRIORITY) - before
    finally:
        engine.close()
    run.seconds = round(seconds, 4)
    run.details["build_seconds"] = round(build, 4)
    if waiting != run.jobs:
        run.error = f"{waiting} jobs waiting after enqueueing {run.jobs}"
    else:
        run.jobs_per_sec = round(run.jobs / seconds, 1)
    return run


def jobqueue_single(url: str, count: int) -> Run:
    def one_by_one(engine: Engine, n: int) -> float:
        build = 0.0
        for i in range(n):
            t = time.perf_counter()
            job = new_job(f"/bench/e{i}.dat", PRIORITY)
            build += time.perf_counter() - t
            engine.enqueue(job, PRIORITY)
        return build

    run = Run("enqueue", "jobqueue", "jobqueue", count, "Engine.enqueue, one call per job")
    run.details["style"] = "single"
    return _timed(run, url, one_by_one)


def jobqueue_batched(url: str, count: int, batch: int) -> Run:
    def batched(engine: Engine, n: int) -> float:
        build = 0.0
        for start in range(0, n, batch):
            t = time.perf_counter()
            jobs = _jobs(min(batch, n - start))
            build += time.perf_counter() - t
            engine.enqueue_many([(job, PRIORITY) for job in jobs])
        return build

    config = f"Engine.enqueue_many, {batch:,} per call"
    run = Run("enqueue", "jobqueue", "jobqueue", count, config)
    run.details.update(style="batched", batch=batch)
    return _timed(run, url, batched)


def floor_rows(url: str, single: int, bulk: int) -> list[Run]:
    """LPUSH one payload per call (``single`` jobs) and pipelines of FLOOR_BATCH LPUSH
    (``bulk`` jobs), the payloads built before the clock starts."""
    payloads = [job.to_json() for job in _jobs(FLOOR_BATCH)]
    runs = []
    with redis.Redis.from_url(url) as client:
        for system, style, n, config in (
            ("floor: LPUSH", "single", single, "one call per job, payloads ready-made"),
            ("floor: pipelined LPUSH", "batched", bulk, f"{FLOOR_BATCH:,} LPUSH per round trip"),
        ):
            client.flushall()
            started = time.perf_counter()
            if style == "single":
                for i in range(n):
                    client.lpush(FLOOR_KEY, payloads[i % FLOOR_BATCH])
            else:
                for start in range(0, n, FLOOR_BATCH):
                    pipe = client.pipeline(transaction=False)
                    for payload in payloads[: min(FLOOR_BATCH, n - start)]:
                        pipe.lpush(FLOOR_KEY, payload)
                    pipe.execute()
            seconds = time.perf_counter() - started
            run = Run("enqueue", system, "floor", n, config, round(seconds, 4), round(n / seconds))
            run.details["style"] = style
            if int(client.llen(FLOOR_KEY)) != n:
                run.error = f"{client.llen(FLOOR_KEY)} payloads in the list after {n} LPUSH"
            runs.append(run)
    return runs
