"""The tabs' rows, built from a ``Sample`` (or a key census) with the CLI's own formatting
(``admin.render``): same names, same figures. Each row carries the text the filter
matches. No Textual here."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from jobqueue.admin import render
from jobqueue.admin.commands import Peeked
from jobqueue.tui.model import Sample

ERROR_CHARS = 120  # a reason in a table cell; the job view shows it whole


@dataclass(frozen=True, slots=True)
class Row:
    key: str  # stable across refreshes: the selection follows it
    cells: tuple[str, ...]
    search: str  # what the filter matches against
    peeked: Peeked | None = None  # a job row's entry (its whole payload)

    @property
    def job_id(self) -> str | None:
        """The id a row action sends to ``act_on_jobs``; None for a malformed entry."""
        return self.key if self.peeked is not None and not self.key.startswith("?") else None


QUEUE_COLUMNS = ("queue", *render.STATES)
WORKER_COLUMNS = ("worker", "state", "heartbeat", "breaker", "running", "reserved", "jobs")
DEAD_COLUMNS = ("job", "queue", "attempts", "reason")
SCHEDULED_COLUMNS = ("job", "queue", "due", "attempts", "last error")
KEY_COLUMNS = ("by", "name", "keys")


def queue_rows(sample: Sample) -> list[Row]:
    queues = sample.overview.stats.queues
    return [
        Row(label, (label, *render.state_counts(counts)), label) for label, counts in queues.items()
    ]


def worker_rows(sample: Sample) -> list[Row]:
    rows = []
    for w in sample.overview.workers:
        jobs = ", ".join(sample.held.get(w.id, [])) or "-"
        state = "live" if w.alive else "expired"
        cells = (
            w.id,
            state,
            render.fmt_age(w.heartbeat_age),
            w.breaker or "-",
            str(w.running),
            str(w.reserved),
            jobs,
        )
        rows.append(Row(w.id, cells, f"{w.id} {state} {w.breaker} {jobs}"))
    return rows


def _field(payload: Any, name: str) -> str:
    value = payload.get(name, "") if isinstance(payload, dict) else ""
    return "" if value is None else str(value)


def _one_line(text: str) -> str:
    """A reason on one line, cut at ERROR_CHARS (enter opens the job and shows it whole)."""
    flat = " ".join(text.split())
    return (flat[:ERROR_CHARS] + "…" if len(flat) > ERROR_CHARS else flat) or "-"


def _job_key(peeked: Peeked, payload: Any, position: int) -> str:
    """The job's id; a malformed entry gets a key of its own that no action can take."""
    return _field(payload, "id") or f"?{peeked.priority}:{position}"


def dead_rows(sample: Sample) -> list[Row]:
    rows = []
    for position, peeked in enumerate(sample.dead):
        payload = peeked.payload()
        key = _job_key(peeked, payload, position)
        reason = _field(payload, "last_error") or ("not a job" if key.startswith("?") else "")
        attempts = _field(payload, "retries") or "-"
        cells = (key, peeked.priority, attempts, _one_line(reason))
        rows.append(Row(key, cells, f"{key} {peeked.priority} {reason}", peeked))
    return rows


def due_in(due_ms: int | None, now: float) -> str:
    """``in 42s``, ``due now`` (the promoter has not moved it yet), ``-`` when unknown."""
    if due_ms is None:
        return "-"
    left = due_ms / 1000 - now
    return f"in {render.fmt_age(left)}" if left > 0 else "due now"


def scheduled_rows(sample: Sample, now: float) -> list[Row]:
    rows = []
    for position, peeked in enumerate(sample.scheduled):
        payload = peeked.payload()
        key = _job_key(peeked, payload, position)
        error = _field(payload, "last_error")
        attempts = _field(payload, "retries") or "-"
        cells = (key, peeked.priority, due_in(peeked.entry.due_ms, now), attempts, _one_line(error))
        rows.append(Row(key, cells, f"{key} {peeked.priority} {error}", peeked))
    return rows


def key_rows(census: dict[str, Any]) -> list[Row]:
    """``admin stats-keys``: keys by kind, then by Redis type, most first."""
    rows = []
    for by in ("kind", "type"):
        counts: dict[str, int] = census[f"by_{by}"]
        for name, count in sorted(counts.items(), key=lambda item: (-item[1], item[0])):
            rows.append(Row(f"{by}:{name}", (by, name, str(count)), f"{by} {name}"))
    return rows


def census_caption(census: dict[str, Any], at: str) -> str:
    memory = render.fmt_bytes(int(census["memory_estimated_bytes"]))
    return (
        f"{census['keys']} keys in namespace {census['namespace']!r} · about {memory} "
        f"(sampled {census['memory_sampled_keys']} keys) · SCAN at {at}; r scans again"
    )
