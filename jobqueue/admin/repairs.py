"""Admin commands that change data: purges, requeues, a one-shot reaper sweep.

Each checks its safety flags before it connects (a refusal is exit 2 even when Redis is
down), and each destructive one has a dry run that counts what it would do and changes
nothing, so it needs no safety flag.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from jobqueue.admin.commands import RequeueReport, queue_labels, session
from jobqueue.config import Settings
from jobqueue.engine import Engine, Inspector
from jobqueue.errors import UsageError
from jobqueue.job import json_object


def select_queues(settings: Settings, queue: str | None) -> dict[str, str]:
    """Priority -> queue name for ``--queue`` (a priority or a queue name; None: all)."""
    labels = queue_labels(settings)
    if queue is None:
        return labels
    for priority, name in labels.items():
        if queue in (priority, name):
            return {priority: name}
    raise UsageError(f"--queue {queue!r} is not one of: {', '.join(labels)}")


PURGE_PAGE = 500  # dead-letter entries deleted per script call


def _dead_counts(engine: Engine, targets: dict[str, str]) -> dict[str, int]:
    stats = Inspector(engine).stats(targets)
    return {p: stats.queues[p].dead_letter for p in targets}


@dataclass(frozen=True, slots=True)
class PurgeReport:
    """``purge-dlq``: dead-letter entries deleted (or, in a dry run, that would be)."""

    per_queue: dict[str, int]
    dry_run: bool

    @property
    def total(self) -> int:
        return sum(self.per_queue.values())

    def as_json(self) -> dict[str, Any]:
        return {"dry_run": self.dry_run, "purged": self.total, "queues": self.per_queue}

    def line(self) -> str:
        detail = ", ".join(f"{p}: {n}" for p, n in self.per_queue.items())
        if self.dry_run:
            return f"would purge {self.total} dead-letter jobs ({detail}); add --yes to do it"
        return f"purged {self.total} dead-letter jobs ({detail})"


def purge_dlq(
    settings: Settings, yes: bool, queue: str | None, dry_run: bool, n: int | None = None
) -> PurgeReport:
    """Delete the dead-letter entries of every configured queue, or of ``queue``. ``n``:
    at most that many, oldest first, across the queues in priority order, so that a purge
    confirmed on a count shown earlier deletes no job that died after it was shown (new
    deaths go to the other end of the list)."""
    if n is not None and n < 1:
        raise UsageError("--n must be at least 1")
    targets = select_queues(settings, queue)
    if not (yes or dry_run):
        what = f"every dead-letter job of {queue!r}" if queue else "every dead-letter job"
        raise UsageError(f"purge-dlq deletes {what}; add --yes to confirm (or --dry-run)")
    with session(settings) as engine:
        if dry_run:
            return PurgeReport(_spend(_dead_counts(engine, targets), n), True)
        inspector = Inspector(engine)
        if n is None:
            return PurgeReport({p: inspector.purge_dead([q]) for p, q in targets.items()}, False)
        purged: dict[str, int] = {}
        for priority, name in targets.items():
            entries = [e.raw for e in inspector.peek_dead(name, n)] if n else []
            purged[priority] = sum(
                engine.drop_dead(name, entries[i : i + PURGE_PAGE])
                for i in range(0, len(entries), PURGE_PAGE)
            )
            n -= purged[priority]
        return PurgeReport(purged, False)


def purge_shown(settings: Settings, plan: PurgeReport) -> PurgeReport:
    """Purge, queue by queue, at most what ``plan`` (a dry run someone confirmed) counted:
    the TUI's and the dashboard's confirm dialogs show a count, and a job that died while
    the dialog was open is not part of what was confirmed."""
    purged = dict.fromkeys(plan.per_queue, 0)
    for priority, shown in plan.per_queue.items():
        if shown:
            purged[priority] = purge_dlq(settings, True, priority, False, shown).total
    return PurgeReport(purged, False)


@dataclass(frozen=True, slots=True)
class PurgeAllReport:
    namespace: str
    keys: int
    dry_run: bool

    def as_json(self) -> dict[str, Any]:
        return {"dry_run": self.dry_run, "namespace": self.namespace, "deleted": self.keys}

    def line(self) -> str:
        if self.dry_run:
            return (
                f"would delete {self.keys} keys of namespace {self.namespace!r}; "
                "add --dev --yes to do it"
            )
        return f"deleted {self.keys} keys of namespace {self.namespace!r}"


def purge_all(settings: Settings, dev: bool, yes: bool, dry_run: bool) -> PurgeAllReport:
    """Delete every key of this namespace (found by SCAN); development only."""
    namespace = settings.redis.namespace
    missing = [flag for flag, given in (("--dev", dev), ("--yes", yes)) if not given]
    if missing and not dry_run:
        raise UsageError(
            f"purge-all deletes every key of namespace {namespace!r} and is for development "
            f"only; it needs --dev and --yes (missing {' '.join(missing)}), or --dry-run"
        )
    with session(settings) as engine:
        inspector = Inspector(engine)
        if dry_run:
            return PurgeAllReport(namespace, sum(1 for _ in inspector.scan()), True)
        return PurgeAllReport(namespace, inspector.purge_all(), False)


def requeue_dlq(
    settings: Settings,
    n: int | None,
    all_: bool,
    queue: str | None,
    yes: bool,
    dry_run: bool = False,
) -> RequeueReport:
    """Send dead jobs back, oldest first, retries reset, atomically per job. ``n`` counts
    jobs moved across the chosen queues, in priority order (malformed entries they pass are
    skipped and reported, not counted); ``all_`` takes every one; the default is 10."""
    if all_ and n is not None:
        raise UsageError("requeue-dlq takes --n N or --all, not both")
    if n is not None and n < 1:
        raise UsageError("--n must be at least 1")
    targets = select_queues(settings, queue)
    if not (yes or dry_run):
        raise UsageError(
            "requeue-dlq sends dead jobs back to their queues; add --yes to confirm (or --dry-run)"
        )
    budget = None if all_ else (n or 10)
    with session(settings) as engine:
        if dry_run:
            return _plan_requeue(_dead_counts(engine, targets), budget)
        report = RequeueReport()
        for priority, name in targets.items():
            moved, skipped = (0, 0) if budget == 0 else engine.requeue_dead(name, budget)
            report.moved[priority], report.skipped[priority] = moved, skipped
            if budget is not None:
                budget = max(0, budget - moved)
        report.remaining = _dead_counts(engine, targets)
    return report


def _spend(dead: dict[str, int], budget: int | None) -> dict[str, int]:
    """How many of each queue's dead jobs ``budget`` (None: all) reaches, queue by queue in
    priority order, oldest first: what a requeue or a purge with ``n`` would take."""
    taken = {}
    for priority, count in dead.items():
        taken[priority] = count if budget is None else min(budget, count)
        if budget is not None:
            budget -= taken[priority]
    return taken


def _plan_requeue(dead: dict[str, int], budget: int | None) -> RequeueReport:
    """What ``requeue_dead`` would move with ``budget``."""
    report = RequeueReport(dry_run=True)
    for priority, take in _spend(dead, budget).items():
        report.moved[priority], report.skipped[priority] = take, 0
        report.remaining[priority] = dead[priority] - take
    return report


def dry_requeue_line(report: RequeueReport) -> str:
    doc = report.as_json()
    return (
        f"would requeue {doc['moved']} dead jobs (fewer if some are malformed); "
        f"{doc['remaining']} would stay in dead-letter; add --yes to do it"
    )


@dataclass(slots=True)
class ReapReport:
    """``admin reap``: one sweep of the reaper, as the reaper role runs it."""

    expired: list[str] = field(default_factory=list)  # workers expired before the sweep
    remaining: list[str] = field(default_factory=list)  # still registered after it
    recovered: int = 0  # jobs requeued, dead-lettered or handed back

    def as_json(self) -> dict[str, Any]:
        return {
            "expired_workers": self.expired,
            "deregistered": sorted(set(self.expired) - set(self.remaining)),
            "still_expired": self.remaining,
            "recovered_jobs": self.recovered,
        }

    def line(self) -> str:
        gone = len(set(self.expired) - set(self.remaining))
        line = (
            f"reaped {len(self.expired)} expired workers: {self.recovered} jobs recovered, "
            f"{gone} workers deregistered"
        )
        if self.remaining:
            line += f"; {len(self.remaining)} still hold a lease (the next sweep takes them)"
        return line


def reap(settings: Settings) -> ReapReport:
    """Run one reaper sweep now (the reaper role's own ``sweep``)."""
    from jobqueue.observe.metrics import Metrics  # noqa: PLC0415 - only for this command
    from jobqueue.roles.reaper import Reaper  # noqa: PLC0415

    with session(settings) as engine:
        report = ReapReport(expired=sorted(engine.registry.expired()))
        reaper = Reaper(settings, engine, Metrics(), threading.Event())
        try:
            report.recovered = reaper.sweep()
        finally:
            reaper.ledger.close()
        report.remaining = sorted(engine.registry.expired())
    return report


# -- chosen jobs (the TUI's and the dashboard's row actions) --------------------------------

JobAction = Literal["requeue", "delete", "run-now"]
ALL = 1 << 40  # "every entry" for the peek reads


@dataclass(frozen=True, slots=True)
class JobsReport:
    """What ``act_on_jobs`` did: how many of the chosen ids it acted on, and the ids it did
    not find where the action needs them (requeue and delete: the dead-letter lists;
    run-now: the scheduled sets)."""

    action: JobAction
    done: int
    missing: list[str]

    def as_json(self) -> dict[str, Any]:
        return {"action": self.action, "done": self.done, "missing": self.missing}

    def line(self) -> str:
        verb = {"requeue": "requeued", "delete": "deleted", "run-now": "moved to run now"}
        gone = f"; not found: {', '.join(self.missing)}" if self.missing else ""
        return f"{verb[self.action]} {self.done} jobs{gone}"


def act_on_jobs(settings: Settings, action: JobAction, job_ids: Sequence[str]) -> JobsReport:
    """By id: requeue dead jobs (attempts reset, to the queue's head end), delete dead jobs
    for good, or run scheduled jobs now. One read of each queue's list, one script call per
    queue; an id found nowhere is reported, never an error (a worker may have just moved
    it)."""
    wanted = set(job_ids)
    done = 0
    with session(settings) as engine:
        inspector = Inspector(engine)
        for queue in queue_labels(settings).values():
            if action == "run-now":
                entries = inspector.peek_scheduled(queue, ALL)
            else:
                entries = inspector.peek_dead(queue, ALL)
            chosen = [e.raw for e in entries if json_object(e.raw).get("id") in wanted]
            wanted -= {json_object(raw).get("id") for raw in chosen}
            if action == "requeue":
                done += engine.requeue_dead_entries(queue, chosen)
            elif action == "delete":
                done += engine.drop_dead(queue, chosen)
            else:
                done += engine.run_now(queue, chosen)
    return JobsReport(action, done, sorted(wanted))
