"""The printed tables, the summary of targets and the JSON document of a bench run."""

from __future__ import annotations

import json
import os
import platform
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from client_suites import LATENCY_SLOTS, LATENCY_WARMUP, best_latency_peer, best_of
from results import Report, Run, console
from rich.table import Table
from rich.text import Text
from suites import IO_IDEAL, NOOP_TARGET, RSS_TARGET_MB

RATE_COLUMNS = ("jobs/s", "seconds", "startup s", "jobs/s after 1st")


def _rate_cells(run: Run) -> list[str | Text]:
    """jobs/s, seconds, startup, steady rate; or the failure across them."""
    if run.skipped:
        return [run.skipped, "-", "-", "-"]
    if not run.ok:
        return [Text(f"failed: {run.error}", style="red", justify="left"), "-", "-", "-"]
    startup = f"{run.startup_seconds:.2f}" if run.startup_seconds is not None else "-"
    steady = f"{run.after_startup:,.0f}" if run.after_startup else "-"
    return [f"{run.jobs_per_sec:,.0f}", f"{run.seconds:.2f}", startup, steady]


def _ratio(ours: Run, theirs: Run | None) -> str:
    if theirs is None or not ours.ok or not theirs.ok:
        return "-"
    return f"{ours.jobs_per_sec / theirs.jobs_per_sec:.2f}x"


def _table(title: str, *extra: str) -> Table:
    table = Table(title=title)
    table.add_column("system")
    table.add_column("config")
    for column in (*RATE_COLUMNS, *extra):
        table.add_column(column, justify="right")
    return table


def print_noop(report: Report) -> None:
    runs = report.of("noop")
    if not runs:
        return
    top = report.best_peer("noop")
    ours = [run for run in runs if run.kind == "jobqueue"]
    best = report.best("noop")
    peers = sorted((r for r in best.values() if r.kind == "peer"), key=lambda r: -r.jobs_per_sec)
    floors = [run for run in runs if run.kind == "floor"]
    title = f"No-op drain, N = {report.count:,}, one worker process, one Redis"
    table = _table(title, "÷ best peer row")
    for run in [*ours, *peers, *floors]:
        table.add_row(run.system, run.config, *_rate_cells(run), _ratio(run, top))
    console.print(table)
    _print_noop_ratios(report, ours, top)


def _print_noop_ratios(report: Report, ours: list[Run], top: Run | None) -> None:
    rows = [run for run in ours if run.system == "jobqueue"]
    if not rows:
        return
    where = f"{top.system}, {top.config}: {top.jobs_per_sec:,.0f} jobs/s" if top else "none"
    title = f"jobqueue row ÷ best peer row, target >= {NOOP_TARGET:g}x each"
    table = Table(title=title, caption=f"best peer row: {where}")
    for column in ("slots", "jobs/s", "÷ best peer", "after 1st ÷ best peer's after 1st"):
        table.add_column(column, justify="right")
    table.add_column("status")
    for run in rows:
        status = "FAILED" if not run.ok else "N/A"
        if run.ok and top is not None:
            status = "PASS" if run.jobs_per_sec / top.jobs_per_sec >= NOOP_TARGET else "MISS"
        steady = "-"
        if top and run.after_startup and top.after_startup:
            steady = f"{run.after_startup / top.after_startup:.2f}x"
        rate = f"{run.jobs_per_sec:,.0f}" if run.ok else "failed"
        slots = str(run.details.get("slots", "?"))
        table.add_row(slots, rate, _ratio(run, top), steady, status)
    console.print(table)


def print_io(report: Report) -> None:
    runs = report.of("io")
    if not runs:
        return
    table = _table(f"I/O-bound: sleep(0.01) per job, ideal {IO_IDEAL:,.0f} jobs/s", "% of ideal")
    for run in runs:
        share = "-"
        if run.ok:
            share = f"{run.jobs_per_sec / IO_IDEAL:.1%}"
            if run.after_startup:
                share += f" (after 1st {run.after_startup / IO_IDEAL:.1%})"
        table.add_row(run.system, run.config, *_rate_cells(run), share)
    console.print(table)


def print_cpu(report: Report) -> None:
    runs = report.of("cpu")
    if not runs:
        return
    burn = report.notes.get("cpu_burn", {})
    title = (
        f"CPU-bound: pure Python, {burn.get('iterations', 0):,} loop turns per job "
        f"({burn.get('ms_per_job', 0):.2f} ms measured before the rows)"
    )
    table = _table(title, "% of ideal")
    for run in runs:
        ideal = float(run.details.get("ideal_jobs_per_sec", 0.0))
        share = f"{run.jobs_per_sec / ideal:.1%}" if run.ok and ideal else "-"
        table.add_row(run.system, run.config, *_rate_cells(run), share)
    console.print(table)


def print_hostage(report: Report) -> None:
    runs = report.of("hostage")
    if not runs:
        return
    table = Table(title="Hostage: one 4 s job claimed first, then 40 instant jobs, 2 slots")
    table.add_column("measure")
    table.add_column("value", justify="right")
    labels = {
        "long_started_first": "4 s job started before every instant job",
        "long_start_after_spawn": "4 s job started, s after worker spawn",
        "long_ran_seconds": "4 s job ran, s",
        "max_instant_after_long_start": "last instant job done, s after 4 s job started",
        "max_instant_after_spawn": "last instant job done, s after worker spawn",
        "instant_done": "instant jobs recorded done",
        "instant_done_before_long_done": "instant jobs done before the 4 s job finished",
    }
    for run in runs:
        table.add_row("config", run.config)
        table.add_row("drain", f"{run.seconds:.2f} s" if run.ok else f"failed: {run.error}")
        for key, label in labels.items():
            if key in run.details:
                table.add_row(label, str(run.details[key]))
    console.print(table)


def print_memory(report: Report) -> None:
    rows = [run for run in report.runs if "memory" in run.details]
    if not rows:
        return
    title = f"Worker memory after the drain, before the stop (target < {RSS_TARGET_MB:g} MB each)"
    caption = (
        "RSS = VmRSS of every process of the worker (jobqueue: supervisor, fork server, worker "
        "processes, guards); PSS counts pages shared by forked processes once"
    )
    table = Table(title=title, caption=caption)
    for column in ("workload", "system", "config", "processes"):
        table.add_column(column)
    for column in ("largest RSS MB", "sum RSS MB", "sum PSS MB"):
        table.add_column(column, justify="right")
    for run in rows:
        memory = run.details["memory"]
        names = ", ".join(f"{p['name']} {p['rss_mb']:.0f}" for p in memory["processes"])
        table.add_row(
            run.workload,
            run.system,
            run.config,
            names,
            f"{memory['rss_mb_max']:.1f}",
            f"{memory['rss_mb_total']:.1f}",
            f"{memory['pss_mb_total']:.1f}",
        )
    console.print(table)


def print_enqueue(report: Report) -> None:
    runs = report.of("enqueue")
    if not runs:
        return
    table = Table(title="Enqueue rate, timed in the enqueuing process (no worker running)")
    for column in ("style", "system", "config"):
        table.add_column(column)
    for column in ("jobs", "jobs/s", "seconds", "of which new_job", "÷ best peer, same style"):
        table.add_column(column, justify="right")
    for style in ("single", "batched"):
        top = best_of(report, "enqueue", "peer", style)
        rows = [run for run in runs if run.details.get("style") == style]
        rows.sort(key=lambda r: ("jobqueue", "floor", "peer").index(r.kind))
        for run in rows:
            build = run.details.get("build_seconds")
            share = f"{build / run.seconds:.0%}" if build is not None and run.seconds else "-"
            cells = _rate_cells(run)[:2]
            table.add_row(
                style, run.system, run.config, f"{run.jobs:,}", *cells, share, _ratio(run, top)
            )
    console.print(table)


def print_latency(report: Report) -> None:
    runs = report.of("latency")
    if not runs:
        return
    title = f"Latency: handler start - just before the enqueue call, {LATENCY_SLOTS} idle slots"
    caption = f"jobs sent in the first {LATENCY_WARMUP:g} s left out; p99 ÷ best peer: < 1 = lower"
    table = Table(title=title, caption=caption)
    table.add_column("system")
    table.add_column("config")
    columns = ("sent/s", "jobs measured", "p50 ms", "p95 ms", "p99 ms", "max ms", "p99 ÷ best peer")
    for column in columns:
        table.add_column(column, justify="right")
    top = best_latency_peer(report)
    for run in runs:
        d = run.details
        if not run.ok or "p99_ms" not in d:
            failed = Text(f"failed: {run.error}", style="red")
            table.add_row(run.system, run.config, failed, *["-"] * (len(columns) - 1))
            continue
        ratio = f"{d['p99_ms'] / top.details['p99_ms']:.2f}x" if top else "-"
        marks = (f"{d[f'{m}_ms']:.2f}" for m in ("p50", "p95", "p99", "max"))
        table.add_row(
            run.system, run.config, f"{run.jobs_per_sec:,.0f}", str(d["measured"]), *marks, ratio
        )
    console.print(table)


def print_sweeps(report: Report) -> None:
    table = Table(title="Every configuration tried")
    for column in ("workload", "system", "config"):
        table.add_column(column)
    for column in RATE_COLUMNS[:3]:
        table.add_column(column, justify="right")
    for run in report.runs:
        table.add_row(run.workload, run.system, run.config, *_rate_cells(run)[:3])
    console.print(table)


def print_summary(report: Report) -> None:
    if not report.targets:
        return
    table = Table(title="Targets (issues 9 and 10)")
    for column in ("workload", "target", "goal", "measured", "status"):
        table.add_column(column)
    styles = {"PASS": "green", "MISS": "yellow", "FAILED": "red", "N/A": "dim"}
    for target in report.targets:
        status = Text(target.status, style=styles[target.status])
        table.add_row(target.workload, target.name, target.goal, target.measured, status)
    console.print(table)


def print_all(report: Report) -> None:
    print_noop(report)
    print_io(report)
    print_cpu(report)
    print_hostage(report)
    print_enqueue(report)
    print_latency(report)
    print_memory(report)
    print_sweeps(report)
    print_summary(report)


def _noop_best(report: Report) -> dict[str, Any]:
    top = report.best_peer("noop")
    return {
        "best_peer": top.as_json() if top else None,
        "best": {name: run.as_json() for name, run in report.best("noop").items()},
    }


def write_json(report: Report, path: Path, redis_version: str | None, elapsed: float) -> None:
    document = {
        "count": report.count,
        "finished": datetime.now(UTC).isoformat(timespec="seconds"),
        "elapsed_seconds": round(elapsed, 1),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "redis": redis_version,
            "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
        },
        "targets": [
            {
                "workload": t.workload,
                "name": t.name,
                "goal": t.goal,
                "measured": t.measured,
                "value": t.value,
                "status": t.status,
            }
            for t in report.targets
        ],
        "notes": report.notes,
        "noop": _noop_best(report),
        "runs": [run.as_json() for run in report.runs],
    }
    path.write_text(json.dumps(document, indent=2) + "\n")
    console.print(f"results written to {path}")
