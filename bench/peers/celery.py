"""Celery peer: Redis broker (kombu), one worker process, ``threads`` pool.

``task_acks_late=True``: a message is acked after the task ran, so a crash re-delivers it
(at-least-once, like jobqueue). No result backend (``task_ignore_result``), no events, and the
worker's gossip/mingle/heartbeat broadcasts off: the lean setup for no-op tasks. The prefetch
multiplier stays at Celery's default (4 x concurrency messages reserved).
"""

from __future__ import annotations

import redis
from celery import Celery, Task
from peers._common import Peer, main, script_path, task_done

QUEUE = "celery"
PREFETCH_MULTIPLIER = 4


def _app(url: str) -> tuple[Celery, Task]:
    app = Celery("bench", broker=url)
    app.conf.update(
        task_acks_late=True,
        task_ignore_result=True,
        worker_prefetch_multiplier=PREFETCH_MULTIPLIER,
        worker_hijack_root_logger=False,
        broker_connection_retry_on_startup=True,
    )

    @app.task(name="noop")
    def noop() -> None:
        task_done()

    return app, noop


def enqueue(url: str, n: int) -> None:
    app, noop = _app(url)
    with app.producer_or_acquire() as producer:
        for _ in range(n):
            noop.apply_async(producer=producer)


def pending(client: redis.Redis) -> int:
    return int(client.llen(QUEUE))


def work(url: str, concurrency: int) -> None:
    app, _ = _app(url)
    app.worker_main(
        [
            "worker",
            "--pool=threads",
            f"--concurrency={concurrency}",
            "--loglevel=WARNING",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
        ]
    )


def describe(concurrency: int) -> str:
    return (
        f"threads pool, concurrency {concurrency}, acks_late, "
        f"prefetch x{PREFETCH_MULTIPLIER}, no result backend"
    )


if __name__ == "__main__":
    main(Peer("Celery", enqueue, pending, work, describe), script_path(__file__))
