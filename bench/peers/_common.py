"""Shared harness for the peer scripts in this folder.

Each peer script runs under its own throwaway venv (``bench/.venvs/<peer>``) and is started by
``bench/run.py`` as ``python -P bench/peers/<peer>.py run ...`` with ``PYTHONPATH=bench`` (``-P``
keeps ``bench/peers`` off ``sys.path``, so ``bench/peers/rq.py`` never shadows the real ``rq``).

Modes (each prints one JSON line, except ``work``):

* ``run`` enqueues N no-op jobs with the peer's own client, checks that all N are waiting, then
  spawns the peer's worker (the same script, ``work`` sub-command) and times the drain, from the
  moment the worker process is spawned until N jobs have run; before stopping the worker it
  reads the RSS of its process(es) (``measure.memory``).
* ``enqueue`` times the peer's client in this process: ``--count`` no-op jobs with one call
  per job, then ``--bulk-count`` through the library's bulk call in batches of
  ``BULK_BATCH`` (or ``"no bulk API"``). One untimed call first opens the connection.
* ``latency`` spawns the worker, waits until it has run one probe job, then sends ``latency``
  jobs one call at a time at ``--rate`` per second for ``--count`` jobs (``measure.paced``),
  each carrying its send time; the task appends ``"<sent> <started>"`` to the file named by
  ``BENCH_LATENCY_FILE`` (set by the bench, inherited by the worker), which the bench reads.

Completion is counted the same way for every peer, at almost no cost to the peer: the no-op
task calls ``task_done()``, which bumps a process-local counter under a lock; a reporter thread
in the worker adds the delta to one Redis key (``INCRBY``) every few milliseconds. The timer
polls that key every ``POLL_INTERVAL``. So no peer pays an extra Redis round trip per job, and
the measurement resolution is about one poll plus one report interval (~25 ms).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import measure
import redis

DONE_KEY = "bench:done"
POLL_INTERVAL = 0.02
REPORT_INTERVAL = 0.005
STOP_GRACE = 10.0
STALL_SECONDS = 20.0  # no completion for this long: the run is given up as stalled
BULK_BATCH = 1000  # jobs per bulk call in ``enqueue`` mode
NO_BULK = "no bulk API"

_lock = threading.Lock()
_done = 0


def task_done() -> None:
    """Called by every peer's no-op task."""
    global _done  # noqa: PLW0603 - one process-wide counter, read by the reporter thread
    with _lock:
        _done += 1


def latency_task(sent: float) -> None:
    """The body of every peer's ``latency`` task: record when it started, count it done."""
    measure.record_latency(sent, time.time())
    task_done()


def _report_forever(url: str) -> None:
    client = redis.Redis.from_url(url)
    reported = 0
    while True:
        time.sleep(REPORT_INTERVAL)
        with _lock:
            current = _done
        if current != reported:
            client.incrby(DONE_KEY, current - reported)
            reported = current


def start_reporter(url: str) -> None:
    """Start the daemon thread that publishes this process's completion count to Redis."""
    threading.Thread(
        target=_report_forever, args=(url,), name="bench-reporter", daemon=True
    ).start()


@dataclass(frozen=True)
class Sender:
    """A peer's client, for the timed ``enqueue`` and ``latency`` modes."""

    one: Callable[..., None]  # (task name, *args): one job, one call of the ordinary API
    many: Callable[[int], None] | None = None  # n no-op jobs in one bulk call; None: no API
    close: Callable[[], None] = lambda: None


def loop_sender(
    connect: Callable[[], Awaitable[Any]],
    send: Callable[..., Awaitable[Any]],
    disconnect: Callable[[Any], Awaitable[Any]],
) -> Sender:
    """A Sender over an asyncio client (arq, SAQ): ``connect()`` once, then each
    ``send(client, task, *args)`` awaited to the end on one event loop, one job per call."""
    loop = asyncio.new_event_loop()
    client = loop.run_until_complete(connect())

    def one(task: str, *args: Any) -> None:
        loop.run_until_complete(send(client, task, *args))

    def close() -> None:
        loop.run_until_complete(disconnect(client))
        loop.close()

    return Sender(one, close=close)


@dataclass(frozen=True)
class Peer:
    """What a peer script provides."""

    system: str
    enqueue: Callable[[str, int], None]  # (redis url, n): put n no-op jobs on the queue
    pending: Callable[[redis.Redis], int]  # jobs waiting in the peer's queue
    work: Callable[[str, int], None]  # (redis url, concurrency): run one worker until SIGTERM
    describe: Callable[[int], str]  # concurrency -> config text for the report
    processes: Callable[[int], int] = lambda _concurrency: 1  # worker processes to start
    # (redis url, n, task): put n jobs of another task than the no-op on the queue, for the
    # peers that offer one (``--task``; the worker registers every task it offers)
    enqueue_task: Callable[[str, int, str], None] | None = None
    sender: Callable[[str], Sender] | None = None  # (redis url) -> client for enqueue/latency


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["run", "work", "enqueue", "latency"])
    parser.add_argument("--redis-url", required=True)
    parser.add_argument("--count", type=int, default=20000)
    parser.add_argument("--bulk-count", type=int, default=0, help="enqueue: jobs in bulk")
    parser.add_argument("--rate", type=float, default=1000.0, help="latency: jobs per second")
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--timeout", type=float, default=300.0)
    parser.add_argument("--task", default="noop", help="noop, or a task the peer offers")
    return parser.parse_args(argv)


def main(peer: Peer, script: str) -> None:
    """Entry point of every peer script: ``run`` (time a drain) or ``work`` (be the worker)."""
    args = _parse(sys.argv[1:])
    if args.mode == "work":
        start_reporter(args.redis_url)
        peer.work(args.redis_url, args.concurrency)
        return
    modes = {"run": _timed_drain, "enqueue": _enqueue_rates, "latency": _latency}
    result = modes[args.mode](peer, script, args)
    print(json.dumps(result), flush=True)


def _timed_drain(peer: Peer, script: str, args: argparse.Namespace) -> dict[str, Any]:
    n: int = args.count
    client = redis.Redis.from_url(args.redis_url)
    client.flushdb()
    config = peer.describe(args.concurrency)
    result: dict[str, Any] = {"system": peer.system, "jobs": n, "config": config}
    started = time.perf_counter()
    if args.task == "noop":
        peer.enqueue(args.redis_url, n)
    elif peer.enqueue_task is not None:
        result["config"] = f"{config}, task {args.task}"
        peer.enqueue_task(args.redis_url, n, args.task)
    else:
        return {**result, "error": f"{peer.system} offers no task {args.task!r} here"}
    result["enqueue_seconds"] = round(time.perf_counter() - started, 3)
    waiting = peer.pending(client)
    if waiting != n:
        return {**result, "error": f"{waiting} jobs waiting after enqueueing {n}"}

    with tempfile.TemporaryFile() as log:
        return result | _drain(peer, script, args, log)


@contextlib.contextmanager
def _workers(
    peer: Peer, script: str, args: argparse.Namespace, log: IO[bytes]
) -> Iterator[list[subprocess.Popen[bytes]]]:
    """The peer's worker process(es), logging to ``log``, stopped when the block ends."""
    command = [sys.executable, "-P", script, "work", "--redis-url", args.redis_url]
    command += ["--concurrency", str(args.concurrency)]
    workers = [
        subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        for _ in range(peer.processes(args.concurrency))
    ]
    try:
        yield workers
    finally:
        _stop(workers)


def _failure(done: int, n: int, seconds: float, log: IO[bytes]) -> dict[str, Any]:
    log.seek(0)
    tail = log.read()[-3000:].decode(errors="replace")
    error = f"only {done}/{n} done after {seconds:.0f}s; {last_error(tail)}"
    return {"error": error, "log_tail": tail}


def _drain(peer: Peer, script: str, args: argparse.Namespace, log: IO[bytes]) -> dict[str, Any]:
    """Spawn the worker process(es) and time them until N jobs are done."""
    n: int = args.count
    client = redis.Redis.from_url(args.redis_url)
    t0 = time.perf_counter()
    with _workers(peer, script, args, log) as workers:
        done, first, end = _wait_for(client, n, t0, args.timeout, workers)
        if done >= n:  # idle now; measured before they are stopped
            memory = measure.memory(*(worker.pid for worker in workers))
    first_time, first_done = first if first else (None, None)
    seconds = end - t0
    result: dict[str, Any] = {
        "seconds": round(seconds, 3),
        "jobs_per_sec": round(n / seconds, 1) if done >= n else 0.0,
        "startup_seconds": round(first_time - t0, 3) if first_time else None,
        "first_done": first_done,
        "workers": len(workers),
    }
    if done < n:
        return result | _failure(done, n, seconds, log)
    return result | {"memory": memory}


def _timed_enqueue(
    peer: Peer, client: redis.Redis, n: int, enqueue: Callable[[int], None], config: str
) -> dict[str, Any]:
    """One untimed job (connections, scripts), then ``enqueue(n)`` timed; all must wait."""
    client.flushdb()
    enqueue(1)
    before = peer.pending(client)
    started = time.perf_counter()
    enqueue(n)
    seconds = time.perf_counter() - started
    result: dict[str, Any] = {"jobs": n, "config": config, "seconds": round(seconds, 4)}
    waiting = peer.pending(client) - before
    if waiting != n:
        return result | {"error": f"{waiting} jobs waiting after enqueueing {n}"}
    return result | {"jobs_per_sec": round(n / seconds, 1)}


def _enqueue_rates(peer: Peer, script: str, args: argparse.Namespace) -> dict[str, Any]:
    """Enqueue rate of one call per job (``--count``) and of the bulk call (``--bulk-count``)."""
    del script
    if peer.sender is None:
        return {"system": peer.system, "error": "no client for timed enqueues here"}
    client = redis.Redis.from_url(args.redis_url)
    sender = peer.sender(args.redis_url)
    many = sender.many
    try:

        def single(n: int) -> None:
            for _ in range(n):
                sender.one("noop")

        single_run = _timed_enqueue(peer, client, args.count, single, "one call per job")
        result = {"system": peer.system, "single": single_run}
        if many is None:
            result["batched"] = {"jobs": args.bulk_count, "config": NO_BULK, "skipped": NO_BULK}
        else:

            def batched(n: int) -> None:
                for start in range(0, n, BULK_BATCH):
                    many(min(BULK_BATCH, n - start))

            config = f"bulk API, {BULK_BATCH:,} per call"
            result["batched"] = _timed_enqueue(peer, client, args.bulk_count, batched, config)
    finally:
        sender.close()
        client.flushdb()
    return result


def _latency(peer: Peer, script: str, args: argparse.Namespace) -> dict[str, Any]:
    """Send ``latency`` jobs at a steady rate to an idle worker (see the module docstring)."""
    result: dict[str, Any] = {"system": peer.system, "config": peer.describe(args.concurrency)}
    if peer.sender is None:
        return result | {"error": "no client for timed enqueues here"}
    client = redis.Redis.from_url(args.redis_url)
    client.flushdb()
    sender = peer.sender(args.redis_url)
    n: int = args.count
    with tempfile.TemporaryFile() as log:
        t0 = time.perf_counter()
        with _workers(peer, script, args, log) as workers:
            sender.one("latency", time.time())  # the probe: the worker is up once it ran
            done, _, end = _wait_for(client, 1, t0, args.timeout, workers)
            if done >= 1:
                result |= measure.paced(lambda sent: sender.one("latency", sent), args.rate, n)
                done, _, end = _wait_for(client, n + 1, t0, args.timeout, workers)
        sender.close()
        if done < n + 1:
            return result | _failure(done, n + 1, end - t0, log)
    return result


def _wait_for(
    client: redis.Redis,
    n: int,
    t0: float,
    timeout: float,
    workers: list[subprocess.Popen[bytes]],
) -> tuple[int, tuple[float, int] | None, float]:
    """Poll the done counter until N; return (done, (time, count) when the first completions
    were seen, time of the last poll)."""
    first: tuple[float, int] | None = None
    last_done, last_change = 0, t0
    while True:
        done = int(client.get(DONE_KEY) or 0)
        now = time.perf_counter()
        if done and first is None:
            first = (now, done)
        if done != last_done:
            last_done, last_change = done, now
        if done >= n or now - t0 > timeout or now - last_change > STALL_SECONDS:
            return done, first, now
        if all(w.poll() is not None for w in workers):
            return done, first, now
        time.sleep(POLL_INTERVAL)


def _stop(workers: list[subprocess.Popen[bytes]]) -> None:
    for worker in workers:
        if worker.poll() is None:
            worker.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + STOP_GRACE
    for worker in workers:
        try:
            worker.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()


def last_error(log_text: str) -> str:
    """The most telling line of a worker's log: its last exception, else its last line."""
    lines = [line.strip() for line in log_text.splitlines() if line.strip()]
    errors = [line for line in lines if re.match(r"^[\w.]+(Error|Exception|Exit)\b", line)]
    if errors:
        return errors[-1]
    return lines[-1] if lines else "the worker logged nothing"


def script_path(module_file: str) -> str:
    return str(Path(module_file).resolve())


def wait_for_sigterm() -> None:
    """Block the main thread until SIGTERM or SIGINT."""
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    while not stop.wait(0.5):
        pass
