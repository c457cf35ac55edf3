"""Shared harness for the peer scripts in this folder.

Each peer script runs under its own throwaway venv (``bench/.venvs/<peer>``) and is started by
``bench/run.py`` as ``python -P bench/peers/<peer>.py run ...`` with ``PYTHONPATH=bench`` (``-P``
keeps ``bench/peers`` off ``sys.path``, so ``bench/peers/rq.py`` never shadows the real ``rq``).

``run`` enqueues N no-op jobs with the peer's own client, checks that all N are waiting, then
spawns the peer's worker (the same script, ``work`` sub-command) and times the drain, from the
moment the worker process is spawned until N jobs have run. It prints one JSON line.

Completion is counted the same way for every peer, at almost no cost to the peer: the no-op
task calls ``task_done()``, which bumps a process-local counter under a lock; a reporter thread
in the worker adds the delta to one Redis key (``INCRBY``) every few milliseconds. The timer
polls that key every ``POLL_INTERVAL``. So no peer pays an extra Redis round trip per job, and
the measurement resolution is about one poll plus one report interval (~25 ms).
"""

from __future__ import annotations

import argparse
import json
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import redis

DONE_KEY = "bench:done"
POLL_INTERVAL = 0.02
REPORT_INTERVAL = 0.005
STOP_GRACE = 10.0
STALL_SECONDS = 20.0  # no completion for this long: the run is given up as stalled

_lock = threading.Lock()
_done = 0


def task_done() -> None:
    """Called by every peer's no-op task."""
    global _done  # noqa: PLW0603 - one process-wide counter, read by the reporter thread
    with _lock:
        _done += 1


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


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["run", "work"])
    parser.add_argument("--redis-url", required=True)
    parser.add_argument("--count", type=int, default=20000)
    parser.add_argument("--concurrency", type=int, required=True)
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
    result = _timed_drain(peer, script, args)
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


def _drain(peer: Peer, script: str, args: argparse.Namespace, log: IO[bytes]) -> dict[str, Any]:
    """Spawn the worker process(es) and time them until N jobs are done."""
    n: int = args.count
    client = redis.Redis.from_url(args.redis_url)
    command = [sys.executable, "-P", script, "work", "--redis-url", args.redis_url]
    command += ["--concurrency", str(args.concurrency)]
    t0 = time.perf_counter()
    workers = [
        subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        for _ in range(peer.processes(args.concurrency))
    ]
    try:
        done, first, end = _wait_for(client, n, t0, args.timeout, workers)
    finally:
        _stop(workers)
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
        log.seek(0)
        tail = log.read()[-3000:].decode(errors="replace")
        result["error"] = f"only {done}/{n} done after {seconds:.0f}s; {last_error(tail)}"
        result["log_tail"] = tail
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
