"""RQ peer: SimpleWorker (runs jobs in the worker process, no fork per job).

One SimpleWorker runs one job at a time, so the concurrency knob is the number of SimpleWorker
processes started side by side on the same queue (1 = the plain single-worker setup).
Results are kept (RQ's default result_ttl); no retries. Enqueue: ``Queue.enqueue`` per job;
the bulk API is ``Queue.enqueue_many`` (one pipeline per call).
"""

from __future__ import annotations

import redis
from peers._common import Peer, Sender, latency_task, main, script_path, task_done
from rq import Queue, SimpleWorker

QUEUE = "default"
BATCH = 1000


def noop() -> None:
    task_done()


def latency(sent: float) -> None:
    latency_task(sent)


def _enqueue_many(queue: Queue, n: int) -> None:
    queue.enqueue_many([Queue.prepare_data(noop) for _ in range(n)])


def sender(url: str) -> Sender:
    queue = Queue(QUEUE, connection=redis.Redis.from_url(url))
    return Sender(
        # by name: RQ refuses a function object from __main__ (the worker is this script too)
        lambda task, *args: queue.enqueue(f"__main__.{task}", *args),
        lambda n: _enqueue_many(queue, n),
        queue.connection.close,
    )


def enqueue(url: str, n: int) -> None:
    queue = Queue(QUEUE, connection=redis.Redis.from_url(url))
    for start in range(0, n, BATCH):
        _enqueue_many(queue, min(BATCH, n - start))


def pending(client: redis.Redis) -> int:
    return int(client.llen(f"rq:queue:{QUEUE}"))


def work(url: str, concurrency: int) -> None:
    del concurrency  # one job at a time per process; run.py starts several processes
    client = redis.Redis.from_url(url)
    worker = SimpleWorker([Queue(QUEUE, connection=client)], connection=client)
    worker.work(logging_level="WARNING")  # returns on SIGTERM (warm shutdown)


def describe(concurrency: int) -> str:
    noun = "process" if concurrency == 1 else "processes"
    return f"{concurrency} SimpleWorker {noun}"


if __name__ == "__main__":
    main(
        Peer("RQ", enqueue, pending, work, describe, processes=lambda c: c, sender=sender),
        script_path(__file__),
    )
