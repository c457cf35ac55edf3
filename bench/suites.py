"""The four workloads of issue 9, each a function that runs its rows and records its targets.

* ``noop``: python-callable no-op at each ``--slots`` count (one process) beside the peers'
  own no-op sweeps and the redis-py floors; every jobqueue row ÷ the best peer row, >= 2x.
* ``io``: ``time.sleep(0.01)`` per job on 64 slots (one process): >= 85 % of the ideal
  64 / 0.01 s = 6,400 jobs/s. Dramatiq (64 threads, same sleep) runs beside it for context.
* ``cpu``: ~5 ms of pure Python per job, ``worker.processes`` 1 vs 2: speed-up >= 1.7x.
* ``hostage``: one 4 s job claimed first, then 40 instant jobs, on 2 slots (one process):
  every instant job done within 0.5 s of the 4 s job's start.

Worker memory (issue 10) is read in every drain before the worker stops (the RSS of each of
its processes); its target, every process of every jobqueue no-op row < 60 MB, is judged
here. The enqueue and latency workloads are in client_suites.py.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import workloads
from floor_rows import FLOORS, run_floor
from jobqueue_rows import PRIORITY, WorkerSetup, drain
from peer_rows import PEERS, ensure_venv, run_peer
from results import Report, Run, Target, console
from throwaway_redis import flush

from jobqueue.job import Job, new_job

PY_NOOP: Mapping[str, str] = {"type": "python", "callable": "workloads:noop"}
BUILTIN_NOOP: Mapping[str, str] = {"type": "noop"}
PY_SLEEP: Mapping[str, str] = {"type": "python", "callable": "workloads:sleep10ms"}
PY_BURN: Mapping[str, str] = {"type": "python", "callable": "workloads:burn"}
PY_TIMED: Mapping[str, str] = {"type": "python", "callable": "workloads:timed"}

NOOP_TARGET = 2.0  # every jobqueue row ÷ best peer row
IO_SLOTS = 64
IO_SLEEP = 0.010
IO_IDEAL = IO_SLOTS / IO_SLEEP  # 6,400 jobs/s
IO_TARGET = 0.85  # share of IO_IDEAL
CPU_PROCESSES = (1, 2)
CPU_TARGET = 1.7  # speed-up of 2 processes over 1
HOSTAGE_SLOTS = 2
HOSTAGE_LONG_MS = 4000
HOSTAGE_INSTANT = 40
HOSTAGE_TARGET = 0.5  # seconds from the long job's start to the last instant job's completion
RSS_TARGET_MB = 60.0  # every process of a jobqueue worker, after the no-op drain


@dataclass(frozen=True, slots=True)
class Options:
    count: int  # no-op jobs per drain
    slots: tuple[int, ...]  # worker.count values of the no-op rows
    peers: tuple[str, ...]
    builtin_noop: bool
    floors: bool
    jobqueue: bool  # jobqueue's no-op rows
    skip_install_check: bool
    io_jobs: int
    cpu_jobs: int
    cpu_slots: int
    timeout: float | None  # per drain; None: derived from the workload
    enqueue_jobs: int = 5000  # enqueue workload: one call per job
    enqueue_bulk: int = 50_000  # enqueue workload: the bulk call
    latency_rate: float = 1000.0  # latency workload: jobs per second
    latency_seconds: float = 5.0  # latency workload: how long jobs are sent

    def limit(self, jobs: int, ideal_seconds: float = 0.0) -> float:
        """The time allowed for one drain: --timeout, or 30 s + N/100 s + 3x the ideal."""
        return self.timeout if self.timeout is not None else 30 + jobs / 100 + 3 * ideal_seconds


def plain_jobs(count: int) -> list[Job]:
    return [new_job(f"/bench/f{i}.dat", PRIORITY) for i in range(count)]


def peer_ready(report: Report, workload: str, name: str, opts: Options, jobs: int) -> bool:
    spec = PEERS[name]
    problem = ensure_venv(spec, opts.skip_install_check)
    if problem:
        report.add(Run(workload, spec.system, "peer", jobs, "-", error=problem))
    return problem is None


# -- noop ----------------------------------------------------------------------------------


def bench_noop(report: Report, url: str, opts: Options) -> None:
    console.rule("[bold]no-op drain[/bold]")
    if opts.jobqueue:
        console.print("[bold]jobqueue[/bold]")
        jobs = plain_jobs(opts.count)
        handlers = [("jobqueue", PY_NOOP)]
        handlers += [("jobqueue built-in noop", BUILTIN_NOOP)] if opts.builtin_noop else []
        for system, handler in handlers:
            for slots in opts.slots:
                run = drain(url, "noop", WorkerSetup(slots, handler), jobs, opts.limit(opts.count))
                run.system = system
                run.details["slots"] = slots
                report.add(run)
    if opts.floors:
        console.print("[bold]redis-py floors[/bold]")
        for name, config, loop in FLOORS:
            report.add(run_floor(url, opts.count, name, config, loop))
    for name in opts.peers:
        console.print(f"[bold]{PEERS[name].system}[/bold]")
        if peer_ready(report, "noop", name, opts, opts.count):
            for concurrency in PEERS[name].concurrency:
                flush(url)
                report.add(
                    run_peer(PEERS[name], url, opts.count, concurrency, opts.limit(opts.count))
                )
    _noop_targets(report)
    _memory_target(report)


def _memory_target(report: Report) -> None:
    name = "worker RSS after the no-op drain, largest process of any row"
    goal = f"< {RSS_TARGET_MB:g} MB"
    rows = [r for r in report.of("noop") if r.system == "jobqueue" and "memory" in r.details]
    if not rows:
        report.targets.append(Target("noop", name, goal, "no jobqueue row measured", None))
        return
    worst = max(float(r.details["memory"]["rss_mb_max"]) for r in rows)
    each = ", ".join(
        f"{r.config.partition(', py')[0]}: {r.details['memory']['rss_mb_max']:.1f}" for r in rows
    )
    measured = f"{worst:.1f} MB ({each})"
    report.targets.append(Target("noop", name, goal, measured, worst, worst < RSS_TARGET_MB))


def _noop_targets(report: Report) -> None:
    top = report.best_peer("noop")
    goal = f">= {NOOP_TARGET:g}x"
    for run in report.of("noop"):
        if run.system != "jobqueue":
            continue
        slots = run.details.get("slots", 0)
        name = f"no-op, {slots} slot{'s' if slots != 1 else ''} ÷ best peer row"
        if not run.ok:
            target = Target("noop", name, goal, f"row failed: {run.error}", None)
        elif top is None:
            target = Target("noop", name, goal, "no peer row", None, comparable=False)
        else:
            value = run.jobs_per_sec / top.jobs_per_sec
            measured = (
                f"{value:.2f}x ({run.jobs_per_sec:,.0f} vs {top.system} "
                f"{top.jobs_per_sec:,.0f} jobs/s, {top.config})"
            )
            target = Target("noop", name, goal, measured, value, value >= NOOP_TARGET)
        report.targets.append(target)


# -- io ------------------------------------------------------------------------------------


def bench_io(report: Report, url: str, opts: Options) -> None:
    console.rule("[bold]I/O-bound: sleep(0.01) per job, 64 slots[/bold]")
    n = opts.io_jobs
    timeout = opts.limit(n, n / IO_IDEAL)
    run = report.add(drain(url, "io", WorkerSetup(IO_SLOTS, PY_SLEEP), plain_jobs(n), timeout))
    if "dramatiq" in opts.peers and peer_ready(report, "io", "dramatiq", opts, n):
        flush(url)
        report.add(run_peer(PEERS["dramatiq"], url, n, IO_SLOTS, timeout, "io", "sleep10ms"))
    name = f"I/O-bound, {IO_SLOTS} slots: share of the ideal {IO_IDEAL:,.0f} jobs/s"
    goal = f">= {IO_TARGET:.0%}"
    if not run.ok:
        report.targets.append(Target("io", name, goal, f"row failed: {run.error}", None))
        return
    share = run.jobs_per_sec / IO_IDEAL
    steady = run.after_startup
    measured = f"{share:.1%} ({run.jobs_per_sec:,.0f} jobs/s"
    measured += f"; after 1st: {steady:,.0f} = {steady / IO_IDEAL:.1%})" if steady else ")"
    report.targets.append(Target("io", name, goal, measured, share, share >= IO_TARGET))


# -- cpu -----------------------------------------------------------------------------------


def bench_cpu(report: Report, url: str, opts: Options) -> None:
    console.rule("[bold]CPU-bound: ~5 ms of pure Python per job, 1 vs 2 processes[/bold]")
    iterations = workloads.BURN_ITERATIONS
    burn_ms = workloads.measure_burn_ms(iterations)
    report.notes["cpu_burn"] = {"iterations": iterations, "ms_per_job": round(burn_ms, 3)}
    target_ms = workloads.BURN_TARGET_SECONDS * 1000
    console.print(
        f"burn: {iterations:,} loop turns, calibrated at start to {target_ms:g} ms, "
        f"measure {burn_ms:.2f} ms now (median of {workloads.CALIBRATION_SAMPLES} calls)"
    )
    n = opts.cpu_jobs
    jobs = plain_jobs(n)
    runs: list[Run] = []
    for processes in CPU_PROCESSES:
        setup = WorkerSetup(opts.cpu_slots, PY_BURN, processes)
        run = drain(url, "cpu", setup, jobs, opts.limit(n, n * burn_ms / 1000))
        run.details.update(processes=processes, ideal_jobs_per_sec=processes * 1000 / burn_ms)
        runs.append(report.add(run))
    single, double = runs
    name = "CPU-bound: worker.processes 2 ÷ 1"
    goal = f">= {CPU_TARGET:g}x"
    failed = next((run for run in runs if not run.ok), None)
    if failed is not None:
        procs = failed.details["processes"]
        measured = f"{procs}-process row failed: {failed.error}"
        report.targets.append(Target("cpu", name, goal, measured, None))
        return
    speedup = double.jobs_per_sec / single.jobs_per_sec
    measured = f"{speedup:.2f}x ({double.jobs_per_sec:,.0f} vs {single.jobs_per_sec:,.0f} jobs/s"
    if double.after_startup and single.after_startup:
        measured += f"; after 1st: {double.after_startup / single.after_startup:.2f}x"
    report.notes["cpu_speedup"] = round(speedup, 3)
    report.targets.append(Target("cpu", name, goal, measured + ")", speedup, speedup >= CPU_TARGET))


# -- hostage -------------------------------------------------------------------------------


def bench_hostage(report: Report, url: str, opts: Options) -> None:
    title = f"hostage: one {HOSTAGE_LONG_MS / 1000:g} s job + {HOSTAGE_INSTANT} instant jobs"
    console.rule(f"[bold]{title}, {HOSTAGE_SLOTS} slots[/bold]")
    long_job = new_job(
        "/bench/hostage-long.dat", PRIORITY, sleep_ms=HOSTAGE_LONG_MS, bench_kind="long"
    )
    instant = [
        new_job(f"/bench/hostage-{i}.dat", PRIORITY, bench_kind="instant")
        for i in range(HOSTAGE_INSTANT)
    ]
    fd, events = tempfile.mkstemp(prefix="jq-bench-events-", suffix=".txt")
    os.close(fd)
    try:
        setup = WorkerSetup(HOSTAGE_SLOTS, PY_TIMED, env={workloads.EVENTS_ENV: events})
        jobs = [long_job, *instant]  # the first enqueued is the first claimed
        run = drain(url, "hostage", setup, jobs, opts.limit(len(jobs), HOSTAGE_LONG_MS / 1000))
        run.details.update(analyse_hostage(Path(events), run.spawned_at, long_job, instant))
    finally:
        os.unlink(events)
    report.add(run)
    _hostage_target(report, run)


def analyse_hostage(
    events: Path, spawned_at: float | None, long_job: Job, instant: list[Job]
) -> dict[str, object]:
    """From the handler's event lines: when the long job started and finished, and when each
    instant job finished, relative to the long job's start and to the worker's spawn."""
    seen: dict[tuple[str, str], float] = {}
    for line in events.read_text().splitlines():
        parts = line.split()
        if len(parts) == 4:
            seen[(parts[0], parts[2])] = float(parts[3])
    long_start = seen.get((long_job.id, "start"))
    long_done = seen.get((long_job.id, "done"))
    done = [seen[(job.id, "done")] for job in instant if (job.id, "done") in seen]
    starts = [seen[(job.id, "start")] for job in instant if (job.id, "start") in seen]
    out: dict[str, object] = {"instant_jobs": len(instant), "instant_done": len(done)}
    if long_start is None or not done:
        return out
    out["long_started_first"] = not starts or long_start <= min(starts)
    out["max_instant_after_long_start"] = round(max(done) - long_start, 3)
    if long_done is not None:
        out["long_ran_seconds"] = round(long_done - long_start, 3)
        out["instant_done_before_long_done"] = sum(t < long_done for t in done)
    if spawned_at is not None:
        out["long_start_after_spawn"] = round(long_start - spawned_at, 3)
        out["max_instant_after_spawn"] = round(max(done) - spawned_at, 3)
    return out


def _hostage_target(report: Report, run: Run) -> None:
    name = "hostage: last instant job done after the 4 s job started"
    goal = f"<= {HOSTAGE_TARGET:g} s"
    worst = run.details.get("max_instant_after_long_start")
    if not isinstance(worst, float | int):
        why = run.error or f"{run.details.get('instant_done', 0)} instant jobs recorded"
        report.targets.append(Target("hostage", name, goal, f"nothing measured: {why}", None))
        return
    measured = f"{worst:.3f} s"
    if "max_instant_after_spawn" in run.details:
        measured += f" ({run.details['max_instant_after_spawn']:.3f} s after spawn)"
    if not run.details.get("long_started_first", True):
        measured += "; an instant job started before the 4 s job"
    passed = worst <= HOSTAGE_TARGET and run.ok
    report.targets.append(Target("hostage", name, goal, measured, float(worst), passed))
