"""The two workloads of issue 10 that time a client rather than a drain.

* ``enqueue``: enqueue rate, timed in the enqueuing process. ``single``: one call per job
  (``--enqueue-jobs``, default 5,000); ``batched``: the library's bulk call
  (``--enqueue-bulk``, default 50,000): jobqueue's ``Engine.enqueue_many`` at a few batch
  sizes (enqueue_rows.py), each peer's own bulk API in batches of 1,000 where it has one (RQ
  ``Queue.enqueue_many``; the others have none and say so), and the redis-py floors (LPUSH per
  call, pipelined LPUSH). Target: jobqueue's best batched row >= 50,000 jobs/s.
* ``latency``: one worker process with 4 idle slots; jobs enqueued one call at a time at a
  steady 1,000/s (``--latency-rate``) for ``--latency-seconds`` (5 s), each carrying its send
  time; latency = the handler's start (``time.time()``) - the moment just before the enqueue
  call. Jobs sent in the first ``LATENCY_WARMUP`` (0.5 s) are left out. Target: jobqueue's
  p99 < 5 ms; every peer that can runs the same (4 threads/jobs/processes), beside it.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path

import measure
from enqueue_rows import BATCH_SIZES, floor_rows, jobqueue_batched, jobqueue_single
from jobqueue_rows import WorkerSetup, paced_latency
from peer_rows import PEERS, peer_enqueue, peer_latency
from results import Report, Run, Target, console
from suites import Options, peer_ready
from throwaway_redis import flush

PY_LATENCY: Mapping[str, str] = {"type": "python", "callable": "workloads:latency"}
ENQUEUE_TARGET = 50_000.0  # jobs/s, jobqueue's best batched row
LATENCY_SLOTS = 4
LATENCY_WARMUP = 0.5  # seconds of sends left out at the start
LATENCY_TARGET_MS = 5.0  # jobqueue's p99


# -- enqueue ---------------------------------------------------------------------------------


def bench_enqueue(report: Report, url: str, opts: Options) -> None:
    console.rule("[bold]enqueue rate: one call per job, and the bulk call[/bold]")
    single, bulk = opts.enqueue_jobs, opts.enqueue_bulk
    console.print("[bold]jobqueue[/bold]")
    report.add(jobqueue_single(url, single))
    for batch in BATCH_SIZES:
        report.add(jobqueue_batched(url, bulk, batch))
    if opts.floors:
        console.print("[bold]redis-py floors[/bold]")
        for run in floor_rows(url, single, bulk):
            report.add(run)
    for name in opts.peers:
        console.print(f"[bold]{PEERS[name].system}[/bold]")
        if peer_ready(report, "enqueue", name, opts, single):
            flush(url)
            for run in peer_enqueue(PEERS[name], url, single, bulk, opts.limit(bulk)):
                report.add(run)
    flush(url)
    _enqueue_target(report)


def best_of(report: Report, workload: str, kind: str, style: str | None = None) -> Run | None:
    """The fastest successful row of a kind ("jobqueue", "peer") and, if given, style."""
    rows = [
        run
        for run in report.of(workload)
        if run.kind == kind and run.ok and (style is None or run.details.get("style") == style)
    ]
    return max(rows, key=lambda run: run.jobs_per_sec, default=None)


def _enqueue_target(report: Report) -> None:
    name = "batched enqueue, best batch size"
    goal = f">= {ENQUEUE_TARGET:,.0f} jobs/s"
    ours = best_of(report, "enqueue", "jobqueue", "batched")
    if ours is None:
        report.targets.append(Target("enqueue", name, goal, "every batched row failed", None))
        return
    measured = f"{ours.jobs_per_sec:,.0f} jobs/s ({ours.config})"
    peer = best_of(report, "enqueue", "peer", "batched")
    if peer is not None:
        ratio = ours.jobs_per_sec / peer.jobs_per_sec
        measured += f"; {ratio:.2f}x {peer.system}'s bulk API ({peer.jobs_per_sec:,.0f})"
    passed = ours.jobs_per_sec >= ENQUEUE_TARGET
    report.targets.append(Target("enqueue", name, goal, measured, ours.jobs_per_sec, passed))


# -- latency ---------------------------------------------------------------------------------


@contextlib.contextmanager
def _events_file() -> Iterator[str]:
    fd, path = tempfile.mkstemp(prefix="jq-bench-latency-", suffix=".txt")
    os.close(fd)
    try:
        yield path
    finally:
        os.unlink(path)


def bench_latency(report: Report, url: str, opts: Options) -> None:
    rate, seconds = opts.latency_rate, opts.latency_seconds
    title = f"latency at a steady {rate:,.0f} jobs/s for {seconds:g} s, {LATENCY_SLOTS} idle slots"
    console.rule(f"[bold]{title}[/bold]")
    count = round(rate * seconds)
    timeout = opts.limit(count, seconds)
    with _events_file() as events:
        setup = WorkerSetup(LATENCY_SLOTS, PY_LATENCY, env={measure.LATENCY_ENV: events})
        report.add(_with_stats(paced_latency(url, setup, rate, count, timeout), events))
    for name in opts.peers:
        spec = PEERS[name]
        if not peer_ready(report, "latency", name, opts, count):
            continue
        with _events_file() as events:
            flush(url)
            data, error = peer_latency(spec, url, rate, count, LATENCY_SLOTS, events, timeout)
            run = Run("latency", spec.system, "peer", count, str(data.get("config", "-")))
            run.error = error
            if error is None:
                run.details.update(data)
                run.seconds = float(data["send_seconds"])
                run.jobs_per_sec = float(data["send_rate"])
            report.add(_with_stats(run, events))
    flush(url)
    _latency_target(report)


def _with_stats(run: Run, events: str) -> Run:
    """The percentiles of the jobs sent after the warm-up, read from the handler's lines."""
    if run.error is None:
        since = float(run.details["first_sent"]) + LATENCY_WARMUP
        run.details.update(measure.latency_stats(Path(events), since))
        if "p99_ms" not in run.details:
            run.error = f"no latency recorded after the warm-up ({run.details['recorded']} in all)"
        else:
            run.headline = percentiles(run)
    return run


def percentiles(run: Run) -> str:
    """ "p50 a, p95 b, p99 c, max d ms" of a latency row."""
    marks = ("p50", "p95", "p99", "max")
    return ", ".join(f"{mark} {run.details[f'{mark}_ms']:.2f}" for mark in marks) + " ms"


def best_latency_peer(report: Report) -> Run | None:
    """The peer row with the lowest p99."""
    rows = [r for r in report.of("latency") if r.kind == "peer" and r.ok and "p99_ms" in r.details]
    return min(rows, key=lambda run: float(run.details["p99_ms"]), default=None)


def _latency_target(report: Report) -> None:
    name = f"latency p99 at {LATENCY_SLOTS} idle slots, steady rate"
    goal = f"< {LATENCY_TARGET_MS:g} ms"
    ours = next((r for r in report.of("latency") if r.kind == "jobqueue"), None)
    if ours is None or not ours.ok:
        why = ours.error if ours else "no jobqueue row"
        report.targets.append(Target("latency", name, goal, f"row failed: {why}", None))
        return
    p99 = float(ours.details["p99_ms"])
    measured = f"{p99:.2f} ms ({percentiles(ours)}; {ours.details['measured']} jobs"
    measured += f" at {ours.jobs_per_sec:,.0f}/s)"
    peer = best_latency_peer(report)
    if peer is not None:
        theirs = float(peer.details["p99_ms"])
        measured += f"; {p99 / theirs:.2f}x {peer.system}'s p99 of {theirs:.2f} ms (lower wins)"
    report.targets.append(Target("latency", name, goal, measured, p99, p99 < LATENCY_TARGET_MS))
