"""Presentation without Redis: tables rendered to text, JSON on stdout only."""

from __future__ import annotations

import io
import json

import pytest
from rich.console import Console
from rich.table import Table

from jobqueue.admin import render
from jobqueue.admin.bench import BenchReport
from jobqueue.admin.commands import (
    Overview,
    Peeked,
    PeekResult,
    RequeueReport,
    WorkerRow,
    breaker_states,
    decode_payload,
)
from jobqueue.engine import Entry, QueueCounts, Stats
from jobqueue.job import new_job

NOW = 1_700_000_000.0


def text(table: Table, width: int = 100) -> str:
    console = Console(record=True, width=width, file=io.StringIO())
    console.print(table)
    return console.export_text()


def worker(i: int, breaker: str = "closed", alive: bool = True, pid: int | None = 10) -> WorkerRow:
    return WorkerRow(
        id=f"h:{pid}:{i}:x",
        host="h",
        pid=pid,
        started="2024-05-01T10:00:00+00:00",
        slots=4,
        queues=["high"],
        breaker=breaker,
        current_jobs=i,
        heartbeat_age=1.5 if alive else None,
        alive=alive,
    )


def test_truncate_and_ages() -> None:
    assert render.truncate("short", 10) == "short"
    assert render.truncate("a\nb   c", 10) == "a b c"
    assert render.truncate("x" * 20, 10) == "x" * 9 + "…"
    assert [render.fmt_age(s) for s in (None, 1.25, 90, 7200)] == ["-", "1.2s", "1.5m", "2.0h"]
    assert render.fmt_breakers({}) == "none reported"
    assert render.fmt_breakers({"open": 1, "closed": 3}) == "closed 3, open 1"


def test_breakers_count_live_worker_processes() -> None:
    rows = [worker(0, "open"), worker(1, "open", pid=11), worker(2, "closed", pid=12)]
    rows += [worker(3, "open", alive=False, pid=13), worker(4, "", pid=14)]
    assert breaker_states(rows) == {"open": 2, "closed": 1}


def test_stats_table_caption_names_workers_and_breakers() -> None:
    stats = Stats({"high": QueueCounts(pending=5, dead_letter=2)}, workers=2, registered=3)
    out = text(render.stats_table(Overview(stats, [worker(0, "half-open")])))
    assert "high" in out and "5" in out
    assert "live workers: 2" in out and "registered: 3" in out and "half-open 1" in out


def peek_result(kind: str, entries: list[Entry]) -> PeekResult:
    return PeekResult(kind, kind, [Peeked("high", e) for e in entries])  # type: ignore[arg-type]


def test_peek_table_fits_narrow_and_shows_whole_ids_when_wide() -> None:
    job = new_job("/data/" + "y" * 300, "high")
    result = peek_result("pending", [Entry("high", job.to_json())])
    narrow = text(render.peek_table(result, 80, NOW), 80)
    assert all(len(line) <= 80 for line in narrow.splitlines())
    assert job.id not in narrow and job.id[:8] + "…" in narrow and "…" in narrow
    wide = text(render.peek_table(result, 160, NOW), 160)
    assert job.id in wide and "y" * 300 not in wide


def test_peek_table_for_scheduled_and_dead_and_garbage() -> None:
    due = Entry("low", new_job("/later", "low").to_json(), due_ms=int((NOW + 90) * 1000))
    out = text(render.peek_table(peek_result("scheduled", [due]), 120, NOW), 120)
    assert "due in" in out and "1.5m" in out
    dead = Entry("high", b'{"id":"j1","last_error":"disk on fire","retries":3}')
    garbage = Entry("high", b"\xff\xfe")
    out = text(render.peek_table(peek_result("dead_letter", [dead, garbage]), 120, NOW), 120)
    assert "disk on fire" in out and "//4=" in out and "error" in out
    assert decode_payload(b"\xff\xfe") == "//4="
    assert decode_payload(b"plain") == "plain"
    assert text(render.peek_table(peek_result("completed", []), 80, NOW)).count("empty") == 1


def test_workers_table_limits_rows() -> None:
    rows = [worker(i) for i in range(5)] + [worker(9, alive=False)]
    out = text(render.workers_table(rows, limit=3), 140)
    assert "h:10:2:x" in out and "h:10:3:x" not in out
    assert "5 live, 1 expired" in out and "3 more not shown" in out


def test_census_requeue_and_bench_presentations() -> None:
    census = {"namespace": "ns", "keys": 3, "by_kind": {"pending": 2}, "by_type": {"list": 3}}
    out = text(render.census_table(census | {"memory_estimated_bytes": 300}))
    assert "pending" in out and "list" in out and "3 keys" in out
    report = RequeueReport({"high": 2, "low": 0}, {"high": 1, "low": 0}, {"high": 1, "low": 0})
    assert render.requeue_line(report) == (
        "requeued 2 dead jobs, skipped 1 malformed; 1 left in dead-letter "
        "(high: 2 moved, 1 skipped, low: 0 moved, 0 skipped)"
    )
    bench = BenchReport("r1", "high", "high", 4, 0.0, 300, enqueued=4, completed=4)
    bench.latencies, bench.elapsed_seconds, bench.timed_out = [0.001, 0.002, 0.003, 0.010], 2, True
    out = text(render.bench_table(bench))
    assert "2.0 jobs/s" in out and "latency p99" in out and "10.0 ms" in out
    assert "unlimited" in out and "timed out" in out
    assert bench.percentiles_ms()["p50"] == 2.0


def test_print_json_is_one_document_on_stdout(capsys: pytest.CaptureFixture[str]) -> None:
    render.print_json({"b": 1, "a": [1, 2]})
    render.print_note("to stderr")
    out, err = capsys.readouterr()
    assert json.loads(out) == {"a": [1, 2], "b": 1}
    assert err == "note: to stderr\n"
