"""arq peer: asyncio worker, one process, ``max_jobs`` concurrent jobs.

arq reads job ids from a sorted set every ``poll_delay``. Its default of 0.5 s caps a no-op
drain at a few hundred jobs/s (one batch of ``queue_read_limit`` ids per poll), so the bench
sets ``poll_delay`` to 10 ms: the tuned setting for a deep queue of fast jobs. Results are kept
(arq's default ``keep_result``); no retries are triggered by a no-op. Enqueue:
``ArqRedis.enqueue_job`` per job; arq has no bulk API (the drain's enqueue gathers single calls).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import redis
from arq import Worker, create_pool
from arq.connections import RedisSettings
from peers._common import Peer, Sender, latency_task, loop_sender, main, script_path, task_done

QUEUE = "arq:queue"
BATCH = 500
POLL_DELAY = 0.01


async def noop(ctx: dict[str, Any]) -> None:
    del ctx
    task_done()


async def latency(ctx: dict[str, Any], sent: float) -> None:
    del ctx
    latency_task(sent)


async def _enqueue(url: str, n: int) -> None:
    pool = await create_pool(RedisSettings.from_dsn(url))
    for start in range(0, n, BATCH):
        size = min(BATCH, n - start)
        await asyncio.gather(*(pool.enqueue_job("noop") for _ in range(size)))
    await pool.aclose()


def enqueue(url: str, n: int) -> None:
    asyncio.run(_enqueue(url, n))


def sender(url: str) -> Sender:
    return loop_sender(
        lambda: create_pool(RedisSettings.from_dsn(url)),
        lambda pool, task, *args: pool.enqueue_job(task, *args),
        lambda pool: pool.aclose(),
    )


def pending(client: redis.Redis) -> int:
    return int(client.zcard(QUEUE))


def work(url: str, concurrency: int) -> None:
    logging.basicConfig(level=logging.WARNING)
    worker = Worker(
        functions=[noop, latency],
        redis_settings=RedisSettings.from_dsn(url),
        max_jobs=concurrency,
        poll_delay=POLL_DELAY,
        handle_signals=True,
    )
    worker.run()


def describe(concurrency: int) -> str:
    read_limit = max(concurrency * 5, 100)
    return f"max_jobs {concurrency}, poll_delay {POLL_DELAY * 1000:.0f}ms, read {read_limit}/poll"


if __name__ == "__main__":
    main(Peer("arq", enqueue, pending, work, describe, sender=sender), script_path(__file__))
