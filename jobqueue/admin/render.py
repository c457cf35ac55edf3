"""Terminal and JSON presentation; the only module besides ``top`` that imports rich.

Tables go to stdout; notes and errors to stderr, so ``--json`` output stays one document.
"""

from __future__ import annotations

import itertools
import json
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

if TYPE_CHECKING:
    from jobqueue.admin.bench import BenchReport
    from jobqueue.admin.commands import Overview, Peeked, PeekResult, RequeueReport, WorkerRow
    from jobqueue.engine import JobRecord, QueueCounts


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

# Two units at most, as the config writes durations (``1h30m``): never ``60.0m``.
_UNITS = (("d", 86_400), ("h", 3600), ("m", 60), ("s", 1))


def fmt_age(seconds: float | None) -> str:
    """``4.2s``, ``42s``, ``3m20s``, ``1h``, ``2d3h``; ``-`` when unknown."""
    if seconds is None:
        return "-"
    if seconds < 10:
        return f"{max(0.0, seconds):.1f}s"
    whole = round(seconds)
    for (unit, size), (small, small_size) in itertools.pairwise(_UNITS):
        if whole >= size:
            big, rest = divmod(whole, size)
            return f"{big}{unit}" + (f"{rest // small_size}{small}" if rest // small_size else "")
    return f"{whole}s"


def fmt_bytes(size: int) -> str:
    """Binary units, whole numbers from 10 up: ``512 B``, ``1.5 KiB``, ``27 KiB``."""
    value, unit = float(size), "B"
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            break
        value /= 1024
    return f"{value:.0f} {unit}" if unit == "B" or value >= 10 else f"{value:.1f} {unit}"


def fmt_rate(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def fmt_breakers(breakers: dict[str, int]) -> str:
    if not breakers:
        return "none reported"
    order = {"closed": 0, "half-open": 1, "open": 2}
    states = sorted(breakers, key=lambda s: (order.get(s, 3), s))
    return ", ".join(f"{state} {breakers[state]}" for state in states)


def fmt_workers(live: int, registered: int) -> str:
    """The one phrase for worker counts, in every table and in ``top``."""
    return f"{live} live, {registered - live} expired"


def clipped(text: str, limit: int) -> str:
    """``text`` whole up to ``limit`` characters, else cut with a count of what is hidden
    and where to read it all (a table cell wraps; it never hides silently)."""
    flat = " ".join(text.split())
    if len(flat) <= limit:
        return flat
    return f"{flat[:limit]}… (+{len(flat) - limit} characters: --json shows all)"


def data_table(title: str | None = None, **kwargs: Any) -> Table:
    """The compact table every screen uses: no side borders, so 80 columns hold the
    figures (headers are the vocabulary of docs/admin.md)."""
    return Table(
        title=Text(title) if title else None,
        title_justify="left",
        box=box.SIMPLE_HEAD,
        show_edge=False,
        pad_edge=False,
        **kwargs,
    )


def number_column(table: Table, header: str) -> None:
    """A figure: right-aligned and never wrapped or cut."""
    table.add_column(header, justify="right", no_wrap=True)


# -- stats --------------------------------------------------------------------------------

# The states a queue's jobs are in, as every screen and --json names them (docs/admin.md).
STATES = ("pending", "scheduled", "reserved", "running", "completed", "dead_letter")


def state_counts(counts: QueueCounts) -> list[str]:
    return [str(getattr(counts, state)) for state in STATES]


def stats_table(overview: Overview) -> Table:
    stats = overview.stats
    table = data_table("jobqueue")
    table.add_column("queue", overflow="fold")
    for state in STATES:
        number_column(table, state)
    for name, q in stats.queues.items():
        add_row(table, name, *state_counts(q))
    table.caption = Text(
        f"workers: {fmt_workers(stats.workers, stats.registered)}; "
        f"breakers: {fmt_breakers(overview.breakers)}"
    )
    table.caption_justify = "left"
    return table


def render_stats(overview: Overview) -> None:
    console = stdout_console()
    console.print(stats_table(overview))
    for priority, rate in overview.rate_limits.items():
        console.print(
            f"rate limit {priority}: {rate:g} jobs/s for the whole fleet "
            f"({overview.throttled(priority)} claims found no token)"
        )


# -- peek ---------------------------------------------------------------------------------

_WHEN = {"pending": "created", "scheduled": "due in", "completed": "created", "dead_letter": "died"}
ERROR_CHARS = 600  # a dead job's last error, shown whole up to this
PAYLOAD_CHARS = 240  # the rest of the payload, shown whole up to this


def _field(payload: Any, name: str) -> str:
    return str(payload.get(name, "")) if isinstance(payload, dict) else ""


def _since(stamp: str, now: float) -> str:
    """``2024-05-01T10:00:00Z`` -> ``3m12s`` ago (blank when it does not parse)."""
    try:
        return fmt_age(max(0.0, now - datetime.fromisoformat(stamp).timestamp()))
    except ValueError:
        return ""


def _when(peeked: Peeked, payload: Any, kind: str, now: float) -> str:
    if peeked.entry.due_ms is not None:
        return fmt_age(max(0.0, peeked.entry.due_ms / 1000 - now))
    return _since(_field(payload, "dead_time" if kind == "dead_letter" else "creation_time"), now)


def _job_cell(peeked: Peeked, payload: Any, kind: str, now: float) -> Text:
    """Id whole on the first line (what --json and requeue name), then where and when."""
    retries = _field(payload, "retries") or "-"
    when = _when(peeked, payload, kind, now)
    ago = "" if not when or kind == "scheduled" else " ago"
    return Text(
        f"{_field(payload, 'id') or '-'}\n{peeked.entry.queue} · retries {retries}\n"
        f"{_WHEN[kind]} {when or '-'}{ago}"
    )


def _details_cell(payload: Any, kind: str) -> Text:
    """The error (dead jobs) and the rest of the payload, wrapped by the table."""
    shown = {"id", "retries", "last_error"} if kind == "dead_letter" else {"id", "retries"}
    if isinstance(payload, dict):
        rest = {k: v for k, v in payload.items() if k not in shown}
        text = json.dumps(rest, separators=(",", ":"))
    else:
        text = str(payload)
    lines = [clipped(text, PAYLOAD_CHARS)]
    if kind == "dead_letter":
        lines.insert(0, "error: " + (clipped(_field(payload, "last_error"), ERROR_CHARS) or "-"))
    return Text("\n".join(lines))


def peek_table(result: PeekResult, now: float | None = None) -> Table:
    """One row per entry: the id never cut, errors and payloads wrapped to the width left
    (long ones clipped with a count of what --json adds)."""
    now = time.time() if now is None else now
    asked = "" if result.requested == result.kind else f" ({result.requested})"
    title = f"{result.kind}{asked}: {len(result.entries)} shown"
    table = Table(title=Text(title), title_justify="left", show_lines=True)
    table.add_column("#", justify="right", no_wrap=True)
    table.add_column("job", no_wrap=True)
    details = "error, payload" if result.kind == "dead_letter" else "payload"
    table.add_column(details, overflow="fold")
    for position, peeked in enumerate(result.entries, 1):
        payload = peeked.payload()
        table.add_row(
            str(position),
            _job_cell(peeked, payload, result.kind, now),
            _details_cell(payload, result.kind),
        )
    if not result.entries:
        table.caption = "empty"
    return table


def render_peek(result: PeekResult) -> None:
    stdout_console().print(peek_table(result))


# -- workers ------------------------------------------------------------------------------


def _heartbeat(row: WorkerRow) -> str:
    if not row.alive:
        return "expired"
    return "-" if row.heartbeat_age is None else f"{fmt_age(row.heartbeat_age)} ago"


def workers_table(rows: list[WorkerRow], now: float | None = None, compact: bool = False) -> Table:
    """One row per worker process (the id begins with its host; --json has ``host``). Long
    ids fold rather than squeezing the figures; ``compact`` (``top``) leaves out pid and
    uptime so that an id fits on one line at 80 columns."""
    now = time.time() if now is None else now
    table = data_table()
    table.add_column("worker", overflow="fold", min_width=12)
    extra = () if compact else ("pid", "up")
    for column in (*extra, "running", "reserved"):
        number_column(table, column)
    table.add_column("heartbeat", justify="right", no_wrap=True)
    table.add_column("breaker", no_wrap=True)
    for row in rows:
        started = _since(row.started, now) or "-"
        pid = "-" if row.pid is None else str(row.pid)
        figures = (str(row.running), str(row.reserved))
        add_row(
            table,
            row.id,
            *(figures if compact else (pid, started, *figures)),
            _heartbeat(row),
            row.breaker or "-",
        )
    live = sum(1 for r in rows if r.alive)
    waiting = " (awaiting the reaper)" if live < len(rows) else ""
    table.caption = f"workers: {fmt_workers(live, len(rows))}{waiting}"
    table.caption_justify = "left"
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
        f"{census.get('keys', 0)} keys; memory ≈ "
        f"{fmt_bytes(census.get('memory_estimated_bytes', 0))} "
        f"(sampled {census.get('memory_sampled_keys', 0)} keys)"
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
        (
            "jobs",
            f"{report.enqueued} enqueued of {report.count}, {fmt_bytes(report.payload_bytes)} each",
        ),
        ("enqueue rate", f"{rate}; took {report.enqueue_seconds:.3f}s"),
        ("completed", f"{report.completed}   dead_letter: {report.dead}"),
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


def render_job(record: JobRecord) -> None:
    stdout_console().print(job_table(record))


def job_table(record: JobRecord) -> Table:
    """One job's record as a two-column table: every field whole, times in UTC with their
    age, the error wrapped."""
    now = datetime.now(UTC)
    table = data_table(f"job {record.id}", show_header=False)
    table.add_column("field", style="bold", no_wrap=True)
    table.add_column("value", overflow="fold")
    rows: list[tuple[str, str]] = [("state", record.state), ("queue", record.queue)]
    rows.append(("attempts", str(record.attempts)))
    if record.worker:
        rows.append(("worker", record.worker))
    for name, stamp in (
        ("enqueued", record.enqueued_at),
        ("due", record.due_at),
        ("started", record.started_at),
        ("finished", record.finished_at),
    ):
        if stamp is not None:
            seconds = (now - stamp).total_seconds()
            when = f"in {fmt_age(-seconds)}" if seconds < 0 else f"{fmt_age(seconds)} ago"
            rows.append((name, f"{stamp:%Y-%m-%d %H:%M:%S} UTC ({when})"))
    if record.last_error:
        rows.append(("last error", record.last_error))
    for name, value in rows:
        add_row(table, name, value)
    return table
