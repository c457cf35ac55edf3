"""What a bench run produces: timed drains (``Run``), the targets they are judged against
(``Target``), and the ``Report`` that collects both and prints each drain as it finishes."""

from __future__ import annotations

import sys
from dataclasses import asdict, dataclass, field
from typing import Any

from rich.console import Console

# Wide enough for the tables when stdout is a file or a pipe (rich would assume 80 columns).
# recorded, so that --doc can write what was printed (docs/performance.md)
console = Console(width=None if sys.stdout.isatty() else 150, record=True)

WORKLOADS = ("noop", "io", "cpu", "hostage", "enqueue", "latency")


@dataclass(slots=True)
class Run:
    """One timed drain of N jobs by one system in one configuration."""

    workload: str  # one of WORKLOADS
    system: str
    kind: str  # "jobqueue" | "peer" | "floor"
    jobs: int
    config: str
    seconds: float = 0.0
    jobs_per_sec: float = 0.0
    startup_seconds: float | None = None  # spawn -> first completions seen
    first_done: int | None = None  # how many were done by then
    enqueue_seconds: float | None = None
    spawned_at: float | None = None  # wall clock (time.time()) when the worker was spawned
    details: dict[str, Any] = field(default_factory=dict)  # workload-specific figures
    error: str | None = None
    skipped: str | None = None  # why there is nothing to measure (e.g. "no bulk API")
    log_tail: str | None = None  # the end of the worker's log when a run failed
    headline: str | None = None  # printed when the run is added, instead of its rate

    @property
    def ok(self) -> bool:
        return self.error is None and self.skipped is None and self.jobs_per_sec > 0

    @property
    def after_startup(self) -> float | None:
        """Jobs/s from the first completions seen to the end, leaving out process start-up."""
        if not self.ok or self.startup_seconds is None or self.first_done is None:
            return None
        span = self.seconds - self.startup_seconds
        return round((self.jobs - self.first_done) / span, 1) if span > 0 else None

    def as_json(self) -> dict[str, Any]:
        return {**asdict(self), "jobs_per_sec_after_startup": self.after_startup}


@dataclass(frozen=True, slots=True)
class Target:
    """One of the issue's targets with what this run measured."""

    workload: str
    name: str
    goal: str  # e.g. ">= 2x"
    measured: str  # human-readable figure, or why there is none
    value: float | None  # the figure compared with the goal; None: nothing measured
    passed: bool | None = None  # None when nothing was measured
    comparable: bool = True  # False: nothing to compare with (no peer row), not a failure

    @property
    def status(self) -> str:
        if self.passed is None:
            return "FAILED" if self.comparable else "N/A"
        return "PASS" if self.passed else "MISS"


@dataclass(slots=True)
class Report:
    count: int
    runs: list[Run] = field(default_factory=list)
    targets: list[Target] = field(default_factory=list)
    notes: dict[str, Any] = field(default_factory=dict)  # e.g. the CPU burn calibration

    def add(self, run: Run) -> Run:
        self.runs.append(run)
        if run.skipped:
            console.print(f"  {run.system}: {run.skipped}", highlight=False)
        elif run.ok:
            rate = run.headline or f"{run.jobs_per_sec:,.0f} jobs/s ({run.seconds:.2f}s)"
            console.print(f"  {run.system}, {run.config}: {rate}", highlight=False)
        else:
            text = f"  {run.system} ({run.config}) failed: {run.error}"
            console.print(text, style="red", markup=False, highlight=False)
        return run

    def of(self, workload: str) -> list[Run]:
        return [run for run in self.runs if run.workload == workload]

    def best(self, workload: str) -> dict[str, Run]:
        """The fastest successful run of each system (or its first failure), in run order."""
        best: dict[str, Run] = {}
        for run in self.of(workload):
            held = best.get(run.system)
            if held is None or (run.ok and (not held.ok or run.jobs_per_sec > held.jobs_per_sec)):
                best[run.system] = run
        return best

    def best_peer(self, workload: str) -> Run | None:
        """The single fastest successful peer row of a workload."""
        peers = [run for run in self.of(workload) if run.kind == "peer" and run.ok]
        return max(peers, key=lambda run: run.jobs_per_sec, default=None)
