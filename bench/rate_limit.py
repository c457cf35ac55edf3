"""How closely ``worker.rate_limits`` holds a fleet to its rate.

    .venv/bin/python bench/rate_limit.py [--rate 100] [--jobs 2000] [--processes 3]

Several ``jobqueue --role=worker`` processes (4 slots each) drain one queue limited to
``--rate`` jobs/s, on a throwaway redis-server. Every handler records when its job started
(``workloads:timed``); the script prints the jobs started in each whole second of the run
(the first partial second, when the bucket's burst goes out, and the last are left out),
their mean, minimum and maximum, and the rate over the whole run. Not a test: it asserts
nothing (a loaded machine can only make it slower).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import yaml
from jobqueue_rows import BENCH, NAMESPACE, PRIORITY, QUEUES, _jobqueue_binary
from throwaway_redis import throwaway_redis
from workloads import EVENTS_ENV

from jobqueue.config import Settings
from jobqueue.engine import Engine, Inspector
from jobqueue.job import new_job


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rate", type=float, default=100.0, help="jobs/s (default 100)")
    parser.add_argument("--jobs", type=int, default=2000, help="jobs to drain (default 2000)")
    parser.add_argument("--processes", type=int, default=3, help="workers (default 3)")
    args = parser.parse_args()
    with throwaway_redis() as url, tempfile.TemporaryDirectory(prefix="jq-rate-") as tmp:
        config = {
            "redis": {"url": url, "namespace": NAMESPACE},
            "worker": {
                "count": 4,
                "queues": QUEUES,
                "allowed_roots": ["/"],
                "rate_limits": {PRIORITY: f"{args.rate:g}/s"},
                "handler": {"type": "python", "callable": "workloads:timed"},
            },
            "observability": {"metrics_port": 0, "log_level": "warning"},
        }
        config_path = Path(tmp) / "config.yaml"
        config_path.write_text(yaml.safe_dump(config))
        events = Path(tmp) / "events.txt"
        settings = Settings(**config)  # type: ignore[arg-type]
        engine = Engine.from_settings(settings)
        jobs = [(new_job(f"/rate/{i}", PRIORITY), PRIORITY) for i in range(args.jobs)]
        for start in range(0, len(jobs), 1000):
            engine.enqueue_many(jobs[start : start + 1000])
        env = {**os.environ, "PYTHONPATH": str(BENCH), EVENTS_ENV: str(events)}
        command = [_jobqueue_binary(), "--role=worker", "--config", str(config_path)]
        workers = [subprocess.Popen(command, env=env) for _ in range(args.processes)]
        try:
            labels = {PRIORITY: PRIORITY}
            while Inspector(engine).stats(labels).completed < args.jobs:
                time.sleep(0.2)
        finally:
            for worker in workers:
                worker.terminate()
            for worker in workers:
                worker.wait(timeout=30)
            engine.close()
        starts = sorted(
            float(line.split()[3])
            for line in events.read_text().splitlines()
            if line.split()[2] == "start"
        )
    first, last = starts[0], starts[-1]
    per_second = Counter(int(t - first) for t in starts)
    whole = [per_second[s] for s in range(1, int(last - first))]  # full seconds only
    overall = (len(starts) - 1) / (last - first)
    print(
        f"{args.processes} worker processes x 4 slots, limit {args.rate:g}/s, {args.jobs} jobs: "
        f"{len(whole)} whole seconds, mean {sum(whole) / len(whole):.1f}/s, "
        f"min {min(whole)}, max {max(whole)}; whole run {overall:.1f}/s"
    )
    print("per second:", " ".join(str(n) for n in whole))
    return 0


if __name__ == "__main__":
    sys.exit(main())
