"""Dramatiq peer: Redis broker, one worker process with N worker threads.

Dramatiq's Redis broker keeps every message in a ``.msgs`` hash until it is acked, with a
per-worker ack set and heartbeats (at-least-once). Default middleware, no retries for the no-op.
"""

from __future__ import annotations

import dramatiq
import redis
from dramatiq.brokers.redis import RedisBroker
from peers._common import Peer, main, script_path, task_done, wait_for_sigterm

QUEUE = "default"
BATCH = 1000


def _broker(url: str) -> tuple[RedisBroker, dramatiq.Actor[[], None]]:
    broker = RedisBroker(url=url)
    dramatiq.set_broker(broker)

    @dramatiq.actor(broker=broker, queue_name=QUEUE, max_retries=0)
    def noop() -> None:
        task_done()

    return broker, noop


def enqueue(url: str, n: int) -> None:
    broker, noop = _broker(url)
    for _ in range(n):
        noop.send()
    broker.close()


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
    main(Peer("Dramatiq", enqueue, pending, work, describe), script_path(__file__))
