"""Shard scaling benchmark: no-op jobs/s on a local Redis Cluster of 1, 2 and 3 masters.

    PYTHONPATH=. .venv/bin/python bench/cluster.py [--count 20000] [--shards 1,2,3]
                                                   [--workers 2] [--slots 4] [--json out.json]

Not a test, never part of ``make test``. For each shard count a fresh local cluster (real
``redis-server --cluster-enabled yes`` processes on free ports, slots split evenly by
tests/cluster.py; never the Redis on 6379) gets N no-op jobs spread evenly over three queues
whose hash tags put them on as many different shards as there are (enqueued first, not
timed). Then ``--workers`` worker processes (``worker.count = --slots``, handler ``noop``,
equal weights) are spawned and the run is timed until all N are completed. Reported per run:
spawn-to-done seconds, the steady rate between 10 % and 90 % completion, and how busy each
redis-server was (CPU seconds per wall second, from /proc), which tells whether Redis or the
Python workers were the bottleneck, and Redis CPU per job, from which follows the ceiling of
one shard (one Redis core busy with nothing else). ``--prefetch 1`` turns batching off: one
claim and one ack round trip per job, the heaviest load per job a shard sees.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from measure import cpu_seconds
from redis.crc import key_slot

from jobqueue.config import Settings
from jobqueue.engine import Engine, Inspector
from jobqueue.engine.keys import KeySchema
from jobqueue.job import new_job
from tests.cluster import LocalCluster
from tests.helpers import REPO, write_config

NAMESPACE = "jqbench"
QUEUE_COUNT = 3
ENQUEUE_BATCH = 1000
POLL = 0.02


@dataclass
class Run:
    shards: int
    queues: dict[str, int]  # queue -> shard index
    count: int
    workers: int
    slots: int
    seconds: float = 0.0
    steady_jobs_per_s: float = 0.0
    overall_jobs_per_s: float = 0.0
    prefetch: int = 32
    redis_cpu: list[float] = field(default_factory=list)  # per shard, CPU s per wall s
    redis_us_per_job: float = 0.0  # Redis CPU (all shards) per job
    shard_ceiling_jobs_per_s: int = 0  # one Redis core / redis_us_per_job


def spread_queues(cluster: LocalCluster, n: int) -> dict[str, int]:
    """``n`` queue names whose tags land on shards 0, 1, 2, 0, ... of this cluster."""
    ranges = cluster.slot_ranges()
    chosen: dict[str, int] = {}
    candidate = 0
    while len(chosen) < n:
        name = f"q{candidate}"
        candidate += 1
        slot = key_slot(KeySchema(NAMESPACE).queue(name).pending.encode())
        shard = next(i for i, r in enumerate(ranges) if slot in r)
        if shard == len(chosen) % len(ranges):
            chosen[name] = shard
    return chosen


def bench_settings(cluster: LocalCluster, queues: list[str], slots: int, prefetch: int) -> Settings:
    return Settings(
        redis={
            "url": cluster.url,
            "namespace": NAMESPACE,
            "cluster": {"enabled": True, "startup_nodes": cluster.startup_nodes},
        },
        worker={
            "count": slots,
            "prefetch": prefetch,
            "priorities": queues,
            "queues": {q: q for q in queues},
            "weights": dict.fromkeys(queues, 1),
            "handler": {"type": "noop"},
            "heartbeat_ttl": "10s",
            "claim_timeout": "500ms",
            "shutdown_grace": "2s",
        },
        producer={"default_priority": queues[0]},
        observability={"metrics_port": 0, "log_level": "warning", "log_format": "json"},
    )  # type: ignore[arg-type]


def completed(inspector: Inspector, labels: dict[str, str]) -> int:
    return inspector.stats(labels).completed


def run_once(shards: int, count: int, workers: int, slots: int, prefetch: int, folder: Path) -> Run:
    cluster = LocalCluster(shards).start()
    try:
        queues = spread_queues(cluster, QUEUE_COUNT)
        names = list(queues)
        settings = bench_settings(cluster, names, slots, prefetch)
        config = write_config(folder / f"cluster-{shards}.yaml", settings)
        engine = Engine.from_settings(settings)
        jobs = [(new_job(f"/bench/{i}", names[i % 3]), names[i % 3]) for i in range(count)]
        for start in range(0, count, ENQUEUE_BATCH):
            engine.enqueue_many(jobs[start : start + ENQUEUE_BATCH])
        inspector = Inspector(engine)
        labels = {q: q for q in names}
        pids = [node.process.pid for node in cluster.nodes if node.process]
        cpu_before = [cpu_seconds(pid) for pid in pids]
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        started = time.perf_counter()
        procs = [
            subprocess.Popen(
                [sys.executable, "-m", "jobqueue", "--role=worker", f"--config={config}"],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            for _ in range(workers)
        ]
        marks: dict[int, tuple[float, int]] = {}
        done = 0
        while done < count:
            time.sleep(POLL)
            done = completed(inspector, labels)
            for pct in (10, 90):
                if pct not in marks and done >= count * pct // 100:
                    marks[pct] = (time.perf_counter(), done)
        elapsed = time.perf_counter() - started
        used = [cpu_seconds(p) - b for p, b in zip(pids, cpu_before, strict=True)]
        per_job_us = sum(used) / count * 1e6
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(timeout=30)
        (t10, n10), (t90, n90) = marks[10], marks[90]
        steady = (n90 - n10) / (t90 - t10) if t90 > t10 else 0.0
        engine.close()
        return Run(
            shards, queues, count, workers, slots, round(elapsed, 3), round(steady),
            round(count / elapsed), prefetch, [round(u / elapsed, 2) for u in used],
            round(per_job_us, 1), round(1e6 / per_job_us) if per_job_us else 0,
        )  # fmt: skip
    finally:
        cluster.cleanup()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=20000)
    parser.add_argument("--shards", default="1,2,3")
    parser.add_argument("--workers", type=int, default=2, help="worker processes")
    parser.add_argument("--slots", type=int, default=4, help="worker.count per process")
    parser.add_argument("--prefetch", type=int, default=32, help="worker.prefetch (1: no batch)")
    parser.add_argument("--json", type=Path, help="also write the runs here")
    args = parser.parse_args()
    runs = []
    with tempfile.TemporaryDirectory(prefix="jq-bench-cluster-") as tmp:
        for shards in (int(s) for s in args.shards.split(",")):
            run = run_once(shards, args.count, args.workers, args.slots, args.prefetch, Path(tmp))
            runs.append(run)
            print(
                f"shards={run.shards} workers={run.workers}x{run.slots} "
                f"prefetch={run.prefetch} jobs={run.count} seconds={run.seconds} "
                f"steady={run.steady_jobs_per_s}/s overall={run.overall_jobs_per_s}/s "
                f"redis_cpu={run.redis_cpu} redis_us_per_job={run.redis_us_per_job} "
                f"one_core_shard_ceiling={run.shard_ceiling_jobs_per_s}/s queues={run.queues}",
                flush=True,
            )
    if args.json:
        args.json.write_text(json.dumps([asdict(r) for r in runs], indent=2))


if __name__ == "__main__":
    main()
