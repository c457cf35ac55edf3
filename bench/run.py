"""Benchmark: jobqueue against its peers on one Redis, for the workloads of issues 9 and 10.

``make bench`` runs ``.venv/bin/python bench/run.py``. One throwaway ``redis-server`` (no
persistence, a free port; never the Redis on 6379) serves every run and is flushed before each.
Every drain row times the same thing: N jobs are enqueued first (not timed), then one worker
process is spawned and the clock runs until all N have completed; the RSS of the worker's
processes is read before it is stopped.

Workloads (``--workloads``, see suites.py and bench/README.md):

* ``noop``: jobqueue with a python-callable no-op at each ``--slots`` count, beside the peers
  (Dramatiq, RQ, arq, Celery, Huey, SAQ; own venvs under ``bench/.venvs/``, each at a few
  concurrency settings) and raw redis-py floors;
* ``io``: ``time.sleep(0.01)`` per job on 64 slots, against the ideal 6,400 jobs/s;
* ``cpu``: ~5 ms of pure Python per job, ``worker.processes`` 1 vs 2;
* ``hostage``: a 4 s job claimed first, then 40 instant jobs on 2 slots;
* ``enqueue``: enqueue rate of each client, one call per job and the bulk call, beside the
  redis-py floors (LPUSH, pipelined LPUSH);
* ``latency``: end-to-end latency at a steady 1,000 jobs/s on a worker with 4 idle slots.

The module is split: results.py (rows, targets), throwaway_redis.py, jobqueue_rows.py (one
jobqueue drain, the latency row), workloads.py (the handlers the worker imports), measure.py
(RSS, latency lines, the paced sender; shared with the peers), peer_rows.py, floor_rows.py,
enqueue_rows.py, suites.py (the four drain workloads), client_suites.py (enqueue, latency),
printout.py (tables, summary, JSON).
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from client_suites import bench_enqueue, bench_latency
from peer_rows import PEERS
from printout import print_all, write_json
from results import WORKLOADS, Report, console
from suites import Options, bench_cpu, bench_hostage, bench_io, bench_noop
from throwaway_redis import flush, server_version, throwaway_redis

import jobqueue

SUITES: dict[str, Callable[[Report, str, Options], None]] = {
    "noop": bench_noop,
    "io": bench_io,
    "cpu": bench_cpu,
    "hostage": bench_hostage,
    "enqueue": bench_enqueue,
    "latency": bench_latency,
}


def _int_list(text: str) -> list[int]:
    return [int(part) for part in text.split(",") if part.strip()]


def _names(text: str, known: tuple[str, ...] | list[str], what: str) -> list[str]:
    names = [] if text.strip() == "none" else [p.strip() for p in text.split(",") if p.strip()]
    unknown = [name for name in names if name not in known]
    if unknown:
        raise argparse.ArgumentTypeError(
            f"unknown {what} {', '.join(unknown)}; choose from {', '.join(known)}"
        )
    return names


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    add = parser.add_argument
    add("--count", type=int, default=20000, help="jobs per no-op drain (default 20000)")
    add(
        "--workloads",
        type=lambda text: _names(text, WORKLOADS, "workload"),
        default=list(WORKLOADS),
        help=f"comma-separated subset of {','.join(WORKLOADS)} (default: all)",
    )
    add(
        "--slots",
        "--workers",
        type=_int_list,
        default=[1, 4, 16, 64],
        help="worker.count of the jobqueue no-op rows, comma-separated (default 1,4,16,64)",
    )
    add(
        "--peers",
        type=lambda text: _names(text, list(PEERS), "peer"),
        default=list(PEERS),
        help=f"comma-separated subset of {','.join(PEERS)}, or 'none' (default: all)",
    )
    add("--builtin-noop", action="store_true", help="also run built-in `type: noop` rows")
    add("--no-floors", action="store_true", help="skip the redis-py floors")
    add("--no-jobqueue", action="store_true", help="skip jobqueue's no-op rows")
    add("--io-jobs", type=int, help="jobs of the I/O drain (default max(5000, --count))")
    add("--cpu-jobs", type=int, help="jobs of each CPU drain (default max(1000, --count/10))")
    add("--cpu-slots", type=int, default=1, help="worker.count per process, CPU rows (default 1)")
    add(
        "--enqueue-jobs",
        type=int,
        help="enqueue: jobs of the one-call-per-job rows (default max(1000, --count/4))",
    )
    add(
        "--enqueue-bulk",
        type=int,
        help="enqueue: jobs of the bulk-call rows (default max(10000, 2.5 x --count))",
    )
    add("--latency-rate", type=float, default=1000.0, help="latency: jobs/s (default 1000)")
    add("--latency-seconds", type=float, default=5.0, help="latency: seconds sent (default 5)")
    add("--skip-install-check", action="store_true", help="use the peer venvs as they are")
    add("--json", type=Path, metavar="PATH", help="also write every run and target here")
    add(
        "--doc",
        type=Path,
        metavar="PATH",
        help="also write the printed run as a page (make bench: docs/performance.md)",
    )
    add("--timeout", type=float, help="seconds per drain (default 30 + N/100 + 3x ideal)")
    return parser


def parse_args(argv: list[str] | None = None) -> tuple[Options, list[str], argparse.Namespace]:
    """The options of the suites, the workloads to run in order, and the output paths
    (``json``, ``doc``)."""
    args = _parser().parse_args(argv)
    options = Options(
        count=args.count,
        slots=tuple(args.slots),
        peers=tuple(args.peers),
        builtin_noop=args.builtin_noop,
        floors=not args.no_floors,
        jobqueue=not args.no_jobqueue,
        skip_install_check=args.skip_install_check,
        io_jobs=args.io_jobs or max(5000, args.count),
        cpu_jobs=args.cpu_jobs or max(1000, args.count // 10),
        cpu_slots=args.cpu_slots,
        timeout=args.timeout,
        enqueue_jobs=args.enqueue_jobs or max(1000, args.count // 4),
        enqueue_bulk=args.enqueue_bulk or max(10_000, args.count * 5 // 2),
        latency_rate=args.latency_rate,
        latency_seconds=args.latency_seconds,
    )
    return options, [w for w in WORKLOADS if w in args.workloads], args


def jobqueue_source() -> str:
    """Where the measured jobqueue lives: the bench and its workers import the same one (put
    another checkout first on PYTHONPATH to measure it)."""
    return str(Path(jobqueue.__file__).resolve().parent)


def main(argv: list[str] | None = None) -> int:
    options, workloads, args = parse_args(argv)
    report = Report(options.count)
    started = time.monotonic()
    with throwaway_redis() as url:
        load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
        console.print(
            f"throwaway Redis at {url}; workloads {', '.join(workloads)}; "
            f"N = {options.count:,}; load average {load}"
        )
        console.print(f"jobqueue {jobqueue.__version__} from {jobqueue_source()}", markup=False)
        for workload in workloads:
            SUITES[workload](report, url, options)
        flush(url)
        elapsed = time.monotonic() - started
        print_all(report)
        console.print(f"whole run: {elapsed:.0f}s")
        if args.json:
            report.notes["jobqueue"] = {"version": jobqueue.__version__, "path": jobqueue_source()}
            write_json(report, args.json, server_version(url), elapsed)
        if args.doc:
            args.doc.write_text(performance_page(argv, server_version(url)))
            console.print(f"wrote {args.doc}")
    return 0


PAGE = """# Performance: one `make bench` run

Written by `make bench` (`bench/run.py --doc docs/performance.md`) from one run; do not edit
by hand. One worker process of each system drains jobs from one throwaway redis-server, all
in the same run on the same machine; jobqueue rows use a python-callable handler. What each
workload and target means: bench/README.md. Where the time goes: README "Performance".

- {date}; jobqueue {version} at commit `{commit}`; {machine}; Python {python}; {redis}
- command: `bench/run.py {argv}`

```
{output}
```
"""


def performance_page(argv: list[str] | None, redis_version: str | None) -> str:
    """The run as printed, with what it ran on."""
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"],
        cwd=Path(__file__).resolve().parents[1],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    return PAGE.format(
        date=datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        version=jobqueue.__version__,
        commit=commit or "unknown",
        machine=f"{platform.machine()}, {os.cpu_count()} CPUs, {platform.platform()}",
        python=platform.python_version(),
        redis=f"Redis {redis_version}" if redis_version else "Redis (version unknown)",
        argv=" ".join(argv if argv is not None else sys.argv[1:]),
        output=console.export_text(clear=False).rstrip(),
    )


if __name__ == "__main__":
    sys.exit(main())
