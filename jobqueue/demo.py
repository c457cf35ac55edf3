"""``make demo``: the whole pipeline on generated sample files, then a summary.

Walks a generated folder (mixed sizes and types, odd names, a few files named ``fail`` that
the demo handler rejects), enqueues one job per file, runs a worker (its supervisor in this
process, its worker processes beside it) and a reaper until every job is completed or
dead-lettered, and prints what happened. It uses
the embedded redis-server (``redis.url: embedded``) unless ``JOBQUEUE_REDIS__URL`` is set,
in its own namespace, which it clears first so that every run starts from nothing.
"""

from __future__ import annotations

import os
import random
import sys
import threading
import time
from pathlib import Path
from typing import Any

from jobqueue.config import Settings
from jobqueue.engine import Engine, Inspector
from jobqueue.errors import JobQueueError
from jobqueue.observe.logs import configure_logging
from jobqueue.observe.metrics import Metrics
from jobqueue.roles.producer import run_producer
from jobqueue.roles.reaper import Reaper
from jobqueue.roles.worker.forkserver import worker_context
from jobqueue.roles.worker.supervisor import Supervisor

SAMPLE_DIR = Path("demo-data")
NAMESPACE = "jobqueue-demo"


def make_sample_files(root: Path, count: int = 300, seed: int = 7) -> int:
    """Create ``count`` files of mixed kinds and sizes; return how many exist."""
    rng = random.Random(seed)
    kinds = [".pdf", ".docx", ".txt", ".log", ".csv", ".json"]
    for i in range(count):
        folder = root / f"batch-{i % 5}" / ("nested" if i % 3 == 0 else "")
        folder.mkdir(parents=True, exist_ok=True)
        name = f"file {i:03d}{rng.choice(kinds)}"
        if i % 37 == 0:
            name = f"fail-report-{i}.txt"
        elif i % 41 == 0:
            name = f"résumé «{i}».pdf"
        size = rng.choice([512, 2048, 8192, 32_768, 131_072])
        (folder / name).write_bytes(os.urandom(64) * (size // 64))
    return count


def demo_settings(sample_dir: Path) -> Settings:
    """Demo-sized settings; JOBQUEUE_* environment variables still win (e.g. the Redis URL)."""
    values: dict[str, Any] = {
        "redis": {"url": "embedded://.jobqueue/demo-redis", "namespace": NAMESPACE},
        "worker": {
            "count": 8,
            "max_retries": 2,
            "heartbeat_ttl": "5s",
            "backoff": {"base": "100ms", "max": "500ms"},
            "promote_interval": "100ms",
            "handler": {"type": "demo"},
        },
        "producer": {"scan_dir": str(sample_dir), "high_priority_exts": [".pdf", ".docx"]},
        "reaper": {"interval": "1s"},
        "observability": {"metrics_port": 0, "log_level": "error", "log_format": "console"},
    }
    return Settings(**values)


def drained(inspector: Inspector, labels: dict[str, str]) -> bool:
    stats = inspector.stats(labels)
    return all(q.pending + q.scheduled + q.processing == 0 for q in stats.queues.values())


def run_demo(sample_dir: Path = SAMPLE_DIR) -> int:
    files = make_sample_files(sample_dir)
    settings = demo_settings(sample_dir)
    configure_logging("warning", "console")
    engine = Engine.from_settings(settings)
    try:
        return _run(settings, engine, files, sample_dir)
    finally:
        engine.close()


def _run(settings: Settings, engine: Engine, files: int, sample_dir: Path) -> int:
    """The pipeline until every job is settled; however it ends (done, an error, Ctrl-C),
    the worker and reaper stop before this returns, so that nothing holds the embedded
    server's connections or runs on after the demo."""
    engine.ping()
    inspector = Inspector(engine)
    inspector.purge_all()
    labels = {p: settings.worker.queue_of(p) for p in settings.worker.priorities}
    stop, metrics = threading.Event(), Metrics(processes_dir=worker_context()[1])
    worker = Supervisor(settings, engine, metrics, stop)
    threads = [
        threading.Thread(target=worker.run, daemon=True),
        threading.Thread(target=Reaper(settings, engine, metrics, stop).run, daemon=True),
    ]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    try:
        summary = run_producer(settings, engine, stop, metrics)
        while not drained(inspector, labels):
            time.sleep(0.05)
        elapsed = time.monotonic() - started
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=settings.worker.shutdown_grace + 10)
    stats = inspector.stats(labels)
    retried = sum(q.counters.get("retried", 0) for q in stats.queues.values())
    print(f"demo: {files} files in {sample_dir}/ via {engine.target.display}")
    print(f"  enqueued      {summary.enqueued}")
    print(f"  completed     {stats.completed}")
    print(f"  retried       {retried}")
    print(f"  dead-lettered {stats.dead_letter}  (files named 'fail...' fail on purpose)")
    print(f"  elapsed       {elapsed:.2f}s  ({stats.completed / elapsed:.0f} jobs/s)")
    ok = stats.completed + stats.dead_letter == summary.enqueued
    return 0 if ok else 1


EXIT_INTERRUPTED = 130  # 128 + SIGINT, as a shell reports a Ctrl-C


def main() -> None:
    """``make demo``: one line, never a traceback, for an error or a Ctrl-C; the embedded
    redis-server stops with the demo either way (engine/embedded.py)."""
    try:
        code = run_demo()
    except JobQueueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        code = exc.exit_code
    except KeyboardInterrupt:
        print("demo: interrupted; stopped its worker and its Redis", file=sys.stderr)
        code = EXIT_INTERRUPTED
    raise SystemExit(code)


if __name__ == "__main__":
    main()
