"""RQ peer: SimpleWorker (runs jobs in the worker process, no fork per job).

One SimpleWorker runs one job at a time, so the concurrency knob is the number of SimpleWorker
processes started side by side on the same queue (1 = the plain single-worker setup).
Results are kept (RQ's default result_ttl); no retries.
"""

from __future__ import annotations

import redis
from peers._common import Peer, main, script_path, task_done
from rq import Queue, SimpleWorker

QUEUE = "default"
BATCH = 1000


def noop() -> None:
    task_done()


def enqueue(url: str, n: int) -> None:
    client = redis.Redis.from_url(url)
    queue = Queue(QUEUE, connection=client)
    for start in range(0, n, BATCH):
        size = min(BATCH, n - start)
        queue.enqueue_many([Queue.prepare_data(noop) for _ in range(size)])


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
        Peer("RQ", enqueue, pending, work, describe, processes=lambda c: c),
        script_path(__file__),
    )
