"""Dramatiq peer: Redis broker, one worker process with N worker threads.

Dramatiq's Redis broker keeps every message in a ``.msgs`` hash until it is acked, with a
per-worker ack set and heartbeats (at-least-once). Default middleware, no retries for the no-op.
Besides the no-op it offers ``--task sleep10ms`` (``time.sleep(0.01)``), the I/O-bound job.
Enqueue: ``Actor.send`` per job. No bulk API: ``group(...).run()`` calls ``broker.enqueue``
once per message, as does ``pipeline``; the Redis broker has no batched enqueue.
"""

from __future__ import annotations

import time

import dramatiq
import redis
from dramatiq.brokers.redis import RedisBroker
from peers._common import Peer, Sender, latency_task, main, script_path, task_done, wait_for_sigterm

QUEUE = "default"
BATCH = 1000


def _broker(url: str) -> tuple[RedisBroker, dict[str, dramatiq.Actor[..., None]]]:
    broker = RedisBroker(url=url)
    dramatiq.set_broker(broker)

    @dramatiq.actor(broker=broker, queue_name=QUEUE, max_retries=0)
    def noop() -> None:
        task_done()

    @dramatiq.actor(broker=broker, queue_name=QUEUE, max_retries=0)
    def sleep10ms() -> None:
        time.sleep(0.01)
        task_done()

    @dramatiq.actor(broker=broker, queue_name=QUEUE, max_retries=0)
    def latency(sent: float) -> None:
        latency_task(sent)

    return broker, {"noop": noop, "sleep10ms": sleep10ms, "latency": latency}


def sender(url: str) -> Sender:
    broker, actors = _broker(url)
    return Sender(lambda task, *args: actors[task].send(*args), close=broker.close)


def enqueue_task(url: str, n: int, task: str) -> None:
    broker, actors = _broker(url)
    actor = actors[task]
    for _ in range(n):
        actor.send()
    broker.close()


def enqueue(url: str, n: int) -> None:
    enqueue_task(url, n, "noop")


def pending(client: redis.Redis) -> int:
    return int(client.llen(f"dramatiq:{QUEUE}"))


def work(url: str, concurrency: int) -> None:
    broker, _ = _broker(url)
    worker = dramatiq.Worker(broker, worker_threads=concurrency)
    worker.start()
    wait_for_sigterm()
    worker.stop()


def describe(concurrency: int) -> str:
    prefetch = min(concurrency * 2, 65535)
    return f"{concurrency} threads, prefetch {prefetch}, default middleware"


if __name__ == "__main__":
    main(
        Peer(
            "Dramatiq", enqueue, pending, work, describe, enqueue_task=enqueue_task, sender=sender
        ),
        script_path(__file__),
    )
