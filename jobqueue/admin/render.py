"""Terminal and JSON presentation; the only module besides ``top`` that imports rich.

Tables go to stdout; notes and errors to stderr, so ``--json`` output stays one document.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

if TYPE_CHECKING:
    from jobqueue.admin.bench import BenchReport
    from jobqueue.admin.commands import Overview, Peeked, PeekResult, RequeueReport, WorkerRow

PAYLOAD_WIDTH = 96


def print_json(document: Any) -> None:
    """One JSON document on stdout and nothing else (scripts parse it)."""
    sys.stdout.write(json.dumps(document, indent=2, sort_keys=True, default=str) + "\n")
    sys.stdout.flush()


def show(as_json: bool, document: Callable[[], Any], human: Callable[[], object]) -> None:
    """The one choice every reporting command makes: a JSON document, or the human view."""
    if as_json:
        print_json(document())
    else:
        human()


def stdout_console() -> Console:
    """Data is never markup: a job path like ``[red]x`` or ``:x:`` prints as written."""
    return Console(highlight=False, soft_wrap=False, markup=False, emoji=False)


def stderr_console() -> Console:
    return Console(stderr=True, highlight=False, markup=False, emoji=False)


def add_row(table: Table, *cells: str | Text) -> None:
    """Add a row of literal text (whatever the console's markup and emoji settings)."""
    table.add_row(*(Text(c) if isinstance(c, str) else c for c in cells))


def print_error(message: str) -> None:
    """The one line an operator sees for a failure; no traceback."""
    sys.stderr.write(f"error: {message}\n")
    sys.stderr.flush()


def print_note(message: str) -> None:
    """A remark for the operator that must not pollute stdout (``--json``)."""
    sys.stderr.write(f"note: {message}\n")
    sys.stderr.flush()


def print_line(message: str) -> None:
    sys.stdout.write(message + "\n")
    sys.stdout.flush()


# -- small formatters ---------------------------------------------------------------------


def truncate(text: str, width: int) -> str:
    """``text`` on one line, cut to ``width`` characters with an ellipsis."""
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: max(0, width - 1)] + "…"


def fmt_age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds:.1f}s"
    if seconds < 3600:
        return f"{seconds / 60:.1f}m"
    return f"{seconds / 3600:.1f}h"


def fmt_breakers(breakers: dict[str, int]) -> str:
    if not breakers:
        return "none reported"
    order = {"closed": 0, "half-open": 1, "open": 2}
    states = sorted(breakers, key=lambda s: (order.get(s, 3), s))
    return ", ".join(f"{state} {breakers[state]}" for state in states)


# -- stats --------------------------------------------------------------------------------


def stats_table(overview: Overview) -> Table:
    stats = overview.stats
    table = Table(title="jobqueue", title_justify="left")
    for column in ("queue", "pending", "scheduled", "processing", "completed", "dead"):
        table.add_column(column, justify="left" if column == "queue" else "right")
    for name, q in stats.queues.items():
        add_row(
            table,
            name,
            *(str(v) for v in (q.pending, q.scheduled, q.processing, q.completed, q.dead_letter)),
        )
    table.caption = Text(
        f"live workers: {stats.workers}   registered: {stats.registered}   "
        f"breakers: {fmt_breakers(overview.breakers)}"
    )
    return table


def render_stats(overview: Overview) -> None:
    stdout_console().print(stats_table(overview))


# -- peek ---------------------------------------------------------------------------------

_WHEN = {"pending": "age", "scheduled": "due in", "completed": "age", "dead_letter": "died"}
WIDE = 130  # from this console width on, ids are shown whole


def _field(payload: Any, name: str) -> str:
    return str(payload.get(name, "")) if isinstance(payload, dict) else ""


def _since(stamp: str, now: float) -> str:
    """``2024-05-01T10:00:00Z`` -> ``3.2m`` ago (blank when it does not parse)."""
    try:
        return fmt_age(max(0.0, now - datetime.fromisoformat(stamp).timestamp()))
    except ValueError:
        return ""


def _when(peeked: Peeked, payload: Any, kind: str, now: float) -> str:
    if peeked.entry.due_ms is not None:
        return fmt_age(max(0.0, peeked.entry.due_ms / 1000 - now))
    return _since(_field(payload, "dead_time" if kind == "dead_letter" else "creation_time"), now)


def _peek_row(peeked: Peeked, kind: str, widths: dict[str, int], now: float) -> list[str]:
    payload = peeked.payload()
    if isinstance(payload, dict):  # the id has its own column
        text = json.dumps({k: v for k, v in payload.items() if k != "id"}, separators=(",", ":"))
    else:
        text = str(payload)
    row = [
        peeked.entry.queue,
        truncate(_field(payload, "id") or "-", widths["id"]),
        _field(payload, "retries"),
        _when(peeked, payload, kind, now),
    ]
    if kind == "dead_letter":
        row.append(truncate(_field(payload, "last_error"), widths["error"]))
    return [*row, truncate(text, widths["payload"])]


def peek_table(result: PeekResult, width: int = 100, now: float | None = None) -> Table:
    """Fits ``width`` columns: ids shortened below ``WIDE``, payload truncated to the rest."""
    now = time.time() if now is None else now
    dead = result.kind == "dead_letter"
    queue_w = max([5, *(len(p.entry.queue) for p in result.entries)])
    widths = {
        "#": len(str(len(result.entries))),
        "queue": queue_w,
        "id": 36 if width >= WIDE else 9,
    }
    widths |= {"try": 3, _WHEN[result.kind]: 6} | ({"error": 24} if dead else {})
    used = sum(widths.values()) + 3 * (len(widths) + 1) + 1
    widths["payload"] = max(16, min(PAYLOAD_WIDTH, width - used))
    table = Table(title=Text(f"{result.kind} ({result.requested})"), title_justify="left")
    for column, w in widths.items():
        table.add_column(
            column,
            justify="right" if column in ("#", "try") else "left",
            no_wrap=True,
            min_width=w if column != "payload" else None,
        )
    for position, peeked in enumerate(result.entries, 1):
        add_row(table, str(position), *_peek_row(peeked, result.kind, widths, now))
    if not result.entries:
        table.caption = "empty"
    return table


def render_peek(result: PeekResult) -> None:
    console = stdout_console()
    console.print(peek_table(result, console.width))


# -- workers ------------------------------------------------------------------------------


def _heartbeat(row: WorkerRow) -> str:
    if not row.alive:
        return "expired"
    return "-" if row.heartbeat_age is None else f"{fmt_age(row.heartbeat_age)} ago"


def workers_table(
    rows: list[WorkerRow], limit: int | None = None, now: float | None = None
) -> Table:
    """One row per worker process; long ids fold rather than squeezing the other columns."""
    now = time.time() if now is None else now
    table = Table(title="workers", title_justify="left")
    table.add_column("id", overflow="fold")
    for column in ("host", "pid", "started", "jobs", "heartbeat", "breaker"):
        right = column in ("pid", "jobs", "started", "heartbeat")
        table.add_column(column, justify="right" if right else "left", no_wrap=True)
    shown = rows if limit is None else rows[:limit]
    for row in shown:
        started = _since(row.started, now)
        add_row(
            table,
            row.id,
            row.host,
            "-" if row.pid is None else str(row.pid),
            f"{started} ago" if started else row.started,
            str(row.current_jobs),
            _heartbeat(row),
            row.breaker or "-",
        )
    live = sum(1 for r in rows if r.alive)
    more = f"   ({len(rows) - len(shown)} more not shown)" if len(shown) < len(rows) else ""
    table.caption = f"{live} live, {len(rows) - live} expired (awaiting the reaper){more}"
    return table


def render_workers(rows: list[WorkerRow]) -> None:
    stdout_console().print(workers_table(rows))


# -- census, repairs, bench ---------------------------------------------------------------


def census_table(census: dict[str, Any]) -> Table:
    table = Table(
        title=Text(f"keys in namespace {census.get('namespace', '')}"), title_justify="left"
    )
    table.add_column("group")
    table.add_column("name")
    table.add_column("keys", justify="right")
    for group in ("by_kind", "by_type"):
        for name, count in sorted(census.get(group, {}).items()):
            add_row(table, group.removeprefix("by_"), name, str(count))
    table.caption = (
        f"{census.get('keys', 0)} keys; memory ≈ {census.get('memory_estimated_bytes', 0)} "
        f"bytes (sampled {census.get('memory_sampled_keys', 0)} keys)"
    )
    return table


def render_census(census: dict[str, Any]) -> None:
    stdout_console().print(census_table(census))


def requeue_line(report: RequeueReport) -> str:
    doc = report.as_json()
    per_queue = ", ".join(
        f"{p}: {q['moved']} moved, {q['skipped']} skipped" for p, q in doc["queues"].items()
    )
    return (
        f"requeued {doc['moved']} dead jobs, skipped {doc['skipped']} malformed; "
        f"{doc['remaining']} left in dead-letter ({per_queue})"
    )


def bench_table(report: BenchReport) -> Table:
    doc = report.as_json()
    latency = doc["latency_ms"]
    table = Table(title=f"bench {report.run_id}", title_justify="left", show_header=False)
    table.add_column("measure")
    table.add_column("value", justify="right")
    rate = f"{report.rate:g}/s" if report.rate > 0 else "unlimited"
    rows = [
        ("queue", f"{report.queue} (priority {report.priority})"),
        ("jobs", f"{report.enqueued} enqueued of {report.count}, {report.payload_bytes} B each"),
        ("enqueue rate", f"{rate}; took {report.enqueue_seconds:.3f}s"),
        ("completed", f"{report.completed}   dead: {report.dead}"),
        ("elapsed", f"{report.elapsed_seconds:.3f}s"),
        ("throughput", f"{doc['throughput_per_second']:.1f} jobs/s"),
    ]
    for name in ("p50", "p95", "p99", "max"):
        value = latency[name]
        rows.append((f"latency {name}", "-" if value is None else f"{value:.1f} ms"))
    rows.append(("resolution", f"{report.resolution_ms:.1f} ms (one poll)"))
    rows.append(("live workers", str(report.live_workers)))
    for name, value in rows:
        add_row(table, name, value)
    if report.timed_out:
        table.caption = "timed out before every job completed"
    return table


def render_bench(report: BenchReport) -> None:
    stdout_console().print(bench_table(report))
