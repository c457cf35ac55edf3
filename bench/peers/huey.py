"""Huey peer: RedisHuey, one consumer process with N worker threads.

Each worker thread dequeues with a blocking BRPOP; nothing marks a task in flight, so Huey on
Redis is at-most-once for a crashed consumer (a weaker guarantee than the others here). No
periodic-task scheduler, default polling back-off settings. Enqueue: calling the task, one
LPUSH per job; Huey has no bulk API (``TaskWrapper.map`` enqueues one task at a time).
"""

from __future__ import annotations

import logging

import redis
from huey import RedisHuey
from huey.api import TaskWrapper
from peers._common import Peer, Sender, latency_task, main, script_path, task_done

NAME = "bench"


def _huey(url: str) -> tuple[RedisHuey, dict[str, TaskWrapper]]:
    huey = RedisHuey(NAME, url=url)

    @huey.task(name="noop")
    def noop() -> None:
        task_done()

    @huey.task(name="latency")
    def latency(sent: float) -> None:
        latency_task(sent)

    return huey, {"noop": noop, "latency": latency}


def sender(url: str) -> Sender:
    _, tasks = _huey(url)
    return Sender(lambda task, *args: tasks[task](*args))


def enqueue(url: str, n: int) -> None:
    one = sender(url).one
    for _ in range(n):
        one("noop")


def pending(client: redis.Redis) -> int:
    return int(client.llen(f"huey.redis.{NAME}"))


def work(url: str, concurrency: int) -> None:
    logging.basicConfig(level=logging.WARNING)
    huey, _ = _huey(url)
    consumer = huey.create_consumer(workers=concurrency, worker_type="thread", periodic=False)
    consumer.run()


def describe(concurrency: int) -> str:
    return f"{concurrency} worker thread{'' if concurrency == 1 else 's'}, blocking BRPOP"


if __name__ == "__main__":
    main(Peer("Huey", enqueue, pending, work, describe, sender=sender), script_path(__file__))
