"""SAQ peer: asyncio worker on a Redis queue, one process, ``concurrency`` jobs at a time.

SAQ moves each job id from ``queued`` to ``active`` with BLMOVE and keeps it in an
``incomplete`` sorted set until it finishes; a sweeper re-queues stuck jobs (at-least-once).
Default timers and dequeue settings; the job record is kept after completion (SAQ's default).
Enqueue: ``Queue.enqueue`` per job. SAQ has no bulk API: ``Queue.map`` gathers single
``enqueue`` calls and then waits for the results.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import redis
from peers._common import Peer, Sender, latency_task, loop_sender, main, script_path, task_done
from saq import Queue, Worker

NAME = "default"
BATCH = 500


async def noop(ctx: dict[str, Any]) -> None:
    del ctx
    task_done()


async def latency(ctx: dict[str, Any], *, sent: float) -> None:
    del ctx
    latency_task(sent)


async def _connected(url: str) -> Queue:
    queue = Queue.from_url(url, name=NAME)
    await queue.connect()
    return queue


def sender(url: str) -> Sender:
    return loop_sender(
        lambda: _connected(url),
        lambda queue, task, *sent: queue.enqueue(task, **dict(zip(("sent",), sent, strict=False))),
        lambda queue: queue.disconnect(),
    )


async def _enqueue(url: str, n: int) -> None:
    queue = await _connected(url)
    for start in range(0, n, BATCH):
        size = min(BATCH, n - start)
        await asyncio.gather(*(queue.enqueue("noop") for _ in range(size)))
    await queue.disconnect()


def enqueue(url: str, n: int) -> None:
    asyncio.run(_enqueue(url, n))


def pending(client: redis.Redis) -> int:
    return int(client.llen(f"saq:{NAME}:queued"))


async def _work(url: str, concurrency: int) -> None:
    queue = await _connected(url)
    worker = Worker(queue, functions=[noop, latency], concurrency=concurrency)
    await worker.start()
    await queue.disconnect()


def work(url: str, concurrency: int) -> None:
    logging.basicConfig(level=logging.WARNING)
    asyncio.run(_work(url, concurrency))


def describe(concurrency: int) -> str:
    return f"concurrency {concurrency}"


if __name__ == "__main__":
    main(Peer("SAQ", enqueue, pending, work, describe, sender=sender), script_path(__file__))
