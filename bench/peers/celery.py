"""Celery peer: Redis broker (kombu), one worker process, ``threads`` pool.

``task_acks_late=True``: a message is acked after the task ran, so a crash re-delivers it
(at-least-once, like jobqueue). No result backend (``task_ignore_result``), no events, and the
worker's gossip/mingle/heartbeat broadcasts off: the lean setup for no-op tasks. The prefetch
multiplier stays at Celery's default (4 x concurrency messages reserved). Enqueue:
``Task.delay`` per job. Celery has no bulk API: ``group`` publishes one message per task, and
``chunks`` packs many calls into a few tasks (fewer, bigger jobs, not a bulk send).
"""

from __future__ import annotations

import redis
from celery import Celery, Task
from peers._common import Peer, Sender, latency_task, main, script_path, task_done

QUEUE = "celery"
PREFETCH_MULTIPLIER = 4


def _app(url: str) -> tuple[Celery, dict[str, Task]]:
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

    @app.task(name="latency")
    def latency(sent: float) -> None:
        latency_task(sent)

    return app, {"noop": noop, "latency": latency}


def sender(url: str) -> Sender:
    app, tasks = _app(url)
    return Sender(lambda task, *args: tasks[task].delay(*args), close=app.close)


def enqueue(url: str, n: int) -> None:
    app, tasks = _app(url)
    with app.producer_or_acquire() as producer:
        for _ in range(n):
            tasks["noop"].apply_async(producer=producer)


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
    main(Peer("Celery", enqueue, pending, work, describe, sender=sender), script_path(__file__))
