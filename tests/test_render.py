"""Presentation without Redis: tables rendered to text, JSON on stdout only."""

from __future__ import annotations

import io
import json
import re

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
from tests.states import assert_whole

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
        running=i,
        reserved=i + 1,
        heartbeat_age=1.5 if alive else None,
        alive=alive,
    )


def test_humane_units_and_clipping() -> None:
    ages = (None, 1.25, 42, 90, 200, 3600, 5400, 90_000)
    assert [render.fmt_age(s) for s in ages] == [
        *("-", "1.2s", "42s", "1m30s", "3m20s", "1h", "1h30m", "1d1h")
    ]
    sizes = (512, 1536, 27_456, 3 << 20)
    assert [render.fmt_bytes(n) for n in sizes] == ["512 B", "1.5 KiB", "27 KiB", "3.0 MiB"]
    assert render.clipped("a\nb   c", 10) == "a b c"
    assert render.clipped("x" * 20, 10) == "x" * 10 + "… (+10 characters: --json shows all)"
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
    assert "workers: 2 live, 1 expired" in out and "half-open 1" in out


def test_stats_table_at_80_columns_cuts_no_figure() -> None:
    figures = [1_234_567, 20_100, 3_000, 412, 99_999_999, 201]
    counts = QueueCounts(*figures[:4], completed=figures[4], dead_letter=figures[5])  # type: ignore[misc]
    stats = Stats({"high": counts, "default-low": QueueCounts(pending=7)}, 12, 13)
    out = text(render.stats_table(Overview(stats)), 80)
    assert_whole(out, [*figures, "default-low", "12 live, 1 expired"])
    assert [*render.STATES] == re.findall(r"[a-z_]+", out.splitlines()[1])[1:]  # the vocabulary


def peek_result(kind: str, entries: list[Entry]) -> PeekResult:
    return PeekResult(kind, kind, [Peeked("high", e) for e in entries])  # type: ignore[arg-type]


def test_peek_dead_letter_keeps_ids_and_errors_whole_within_its_borders() -> None:
    error = "out of retries (3): HandlerError: " + "the converter rejected page 12; " * 6
    job = new_job("/data/" + "y" * 300, "high").model_copy(
        update={"retries": 3, "last_error": error}
    )
    result = peek_result("dead_letter", [Entry("high", job.to_json())])
    for width in (80, 160):
        out = text(render.peek_table(result, NOW), width)
        lines = out.splitlines()[1:]  # below the title, every line is inside the table
        assert all(len(line) <= width and line.rstrip()[-1] in "┓┃┩│┘" for line in lines)
        assert job.id in out and "retries 3" in out
        details = " ".join(line.split("│")[3].strip() for line in lines if line[0] == "│")
        assert " ".join(error.split()) in details
        hidden = re.search(r"\(\+(\d+) characters: --json shows all\)", details)
        assert hidden and int(hidden.group(1)) > 0  # the payload says how much it hides


def test_peek_table_for_scheduled_and_dead_and_garbage() -> None:
    due = Entry("low", new_job("/later", "low").to_json(), due_ms=int((NOW + 90) * 1000))
    out = text(render.peek_table(peek_result("scheduled", [due]), NOW), 120)
    assert "due in 1m30s" in out
    dead = Entry("high", b'{"id":"j1","last_error":"disk on fire","retries":3}')
    garbage = Entry("high", b"\xff\xfe")
    out = text(render.peek_table(peek_result("dead_letter", [dead, garbage]), NOW), 120)
    assert "disk on fire" in out and "//4=" in out and "error" in out
    assert decode_payload(b"\xff\xfe") == "//4="
    assert decode_payload(b"plain") == "plain"
    assert text(render.peek_table(peek_result("completed", []), NOW)).count("empty") == 1


def test_workers_table_at_80_columns_cuts_no_figure() -> None:
    rows = [worker(i, pid=40_000 + i) for i in range(5)] + [worker(9, alive=False, pid=99_999)]
    rows[4] = worker(1234, pid=43_210)
    out = text(render.workers_table(rows, now=NOW), 80)
    assert_whole(out, [40_000, 43_210, 99_999, 1234, 1235, "1.5s ago", "expired"])
    assert "5 live, 1 expired" in out and "h:40000:0:x" in out.replace("\n", "")


def test_census_requeue_and_bench_presentations() -> None:
    census = {"namespace": "ns", "keys": 3, "by_kind": {"pending": 2}, "by_type": {"list": 3}}
    out = text(render.census_table(census | {"memory_estimated_bytes": 27_456}))
    assert "pending" in out and "list" in out and "3 keys" in out and "27 KiB" in out
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
