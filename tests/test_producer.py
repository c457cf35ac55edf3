"""The producer role against a real Redis: the right files, once, at the right rate."""

from __future__ import annotations

import io
import os
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from rich.console import Console
from typer.testing import CliRunner

from jobqueue.cli import app
from jobqueue.config import Settings
from jobqueue.engine import Engine
from jobqueue.errors import OperationalError, UsageError
from jobqueue.job import Claimed, Job
from jobqueue.observe.metrics import Metrics
from jobqueue.roles import producer as producer_module
from jobqueue.roles.producer import (
    Producer,
    ProducerSummary,
    batch_step,
    enqueue_paths,
    run_producer,
)
from jobqueue.roles.progress import open_reporter
from tests.conftest import make_settings
from tests.helpers import wait_for, write_config
from tests.test_walk import EXCLUDE_GLOBS, build_odd_tree

HIGH_EXTS = (".pdf", ".docx", ".xlsx")


class RecordingLog:
    """Stands in for a module's structlog logger and keeps every event."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str, dict[str, Any]]] = []

    def __getattr__(self, level: str) -> Any:
        def record(event: str, **fields: Any) -> None:
            self.events.append((level, event, fields))

        return record

    def named(self, fragment: str) -> list[dict[str, Any]]:
        return [fields for _, event, fields in self.events if fragment in event]


def producer_settings(redis_url: str, scan_dir: Path, **producer: object) -> Settings:
    return make_settings(redis_url, producer={"scan_dir": str(scan_dir), **producer})


def pending_jobs(engine: Engine, queue: str) -> list[Job]:
    raws = engine.client.lrange(engine.keys.queue(queue).pending, 0, -1)
    return [Job.model_validate_json(raw) for raw in raws]


def make_files(folder: Path, count: int, ext: str = ".txt") -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"f{i:06d}{ext}" for i in range(count)]
    for path in paths:
        os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o644))
    return paths


# -- what gets enqueued ---------------------------------------------------------------------


@pytest.mark.parametrize("follow", [False, True])
def test_odd_tree_enqueues_exactly_the_right_files_and_priorities(
    redis_url: str, engine: Engine, tmp_path: Path, follow: bool
) -> None:
    root, expected = build_odd_tree(tmp_path)
    os.close(os.open(os.fsencode(root) + b"/not-utf8-\xff.txt", os.O_CREAT | os.O_WRONLY))
    settings = producer_settings(
        redis_url, root, exclude_globs=EXCLUDE_GLOBS, follow_symlinks=follow
    )
    summary = run_producer(settings, engine, threading.Event())

    real_root = os.path.realpath(root)
    want = {
        (os.path.join(real_root, rel), "high" if rel.lower().endswith(HIGH_EXTS) else "low")
        for rel in expected
    }
    got = [(job.filepath, job.priority) for q in ("high", "low") for job in pending_jobs(engine, q)]
    assert sorted(got) == sorted(want), "each wanted file exactly once, odd names intact"
    for q in ("high", "low"):
        assert {job.priority for job in pending_jobs(engine, q)} <= {q}
    for job in pending_jobs(engine, "high") + pending_jobs(engine, "low"):
        assert job.filesize == os.stat(job.filepath).st_size and job.idempotency_key
    aliases = 3 if follow else 0  # inside_link.pdf and sub_alias/deep/*: same real files
    assert summary.enqueued == len(expected)
    assert summary.skipped_duplicate == aliases
    assert summary.skipped_error == 1, "the name that is not UTF-8 cannot go into JSON"
    assert summary.seen == len(expected) + aliases + 1


def test_priority_by_extension_is_case_insensitive_and_dot_optional(
    redis_url: str, engine: Engine, tmp_path: Path
) -> None:
    for name in ("a.PDF", "b.Docx", "c.txt", "d.csv", "e.tar.GZ", "pdf"):
        (tmp_path / name).write_text(name)
    settings = producer_settings(
        redis_url, tmp_path, high_priority_exts=["pdf", ".DOCX", ".tar.gz"]
    )
    run_producer(settings, engine, threading.Event())
    high = sorted(os.path.basename(j.filepath) for j in pending_jobs(engine, "high"))
    low = sorted(os.path.basename(j.filepath) for j in pending_jobs(engine, "low"))
    assert high == ["a.PDF", "b.Docx", "e.tar.GZ"]
    assert low == ["c.txt", "d.csv", "pdf"]


# -- idempotent re-runs ---------------------------------------------------------------------


def test_20k_files_then_nothing_then_only_the_touched_file(
    redis_url: str, engine: Engine, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    files: list[Path] = []
    for d in range(20):
        files += make_files(tmp_path / f"dir{d:02d}", 1000, ".pdf" if d % 4 == 0 else ".txt")
    settings = producer_settings(redis_url, tmp_path)
    metrics = Metrics(CollectorRegistry())

    first = run_producer(settings, engine, threading.Event(), metrics)
    assert (first.seen, first.enqueued, first.skipped_duplicate) == (20_000, 20_000, 0)
    assert engine.pending_length("high") == 5000 and engine.pending_length("low") == 15_000
    assert metrics.jobs_produced.labels(queue="high")._value.get() == 5000
    assert metrics.jobs_produced.labels(queue="low")._value.get() == 15_000

    second = run_producer(settings, engine, threading.Event(), metrics)
    assert (second.enqueued, second.skipped_duplicate) == (0, 20_000)

    touched = files[1234]
    st = touched.stat()
    os.utime(touched, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    third = run_producer(settings, engine, threading.Event(), metrics)
    assert (third.enqueued, third.skipped_duplicate) == (1, 19_999)
    assert pending_jobs(engine, "low")[0].filepath == str(touched)
    with capsys.disabled():
        print(
            f"\n20k files: first pass {first.elapsed:.2f}s ({20_000 / first.elapsed:.0f} files/s),"
            f" second {second.elapsed:.2f}s ({20_000 / second.elapsed:.0f} files/s)"
        )


def test_a_file_stays_deduplicated_after_it_is_done(
    redis_url: str, engine: Engine, tmp_path: Path
) -> None:
    make_files(tmp_path, 3)
    settings = producer_settings(redis_url, tmp_path)
    assert run_producer(settings, engine, threading.Event()).enqueued == 3
    engine.registry.register("w1", {}, ["low"], ttl=30)
    claimed = [engine.decode("low", raw) for raw in engine.claim("low", "w1", 10) or []]
    assert all(engine.ack("low", "w1", claimed))
    again = run_producer(settings, engine, threading.Event())
    assert (again.enqueued, again.skipped_duplicate) == (0, 3), "done keys also deduplicate"


# -- the shared rate limit ------------------------------------------------------------------


def rate_settings(redis_url: str, scan_dir: Path) -> Settings:
    return producer_settings(redis_url, scan_dir, rate_limit_per_sec=200, burst=200)


def test_rate_limit_1000_files_at_200_per_second_take_4_seconds(
    redis_url: str, engine: Engine, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    make_files(tmp_path, 1000)
    settings = rate_settings(redis_url, tmp_path)
    assert batch_step(settings.producer, True) == 10, "50 ms slices: smooth, no big bursts"
    started = time.monotonic()
    summary = run_producer(settings, engine, threading.Event())
    elapsed = time.monotonic() - started
    with capsys.disabled():
        print(f"\n1000 files at 200/s, burst 200: {elapsed:.3f}s")
    assert summary.enqueued == 1000
    assert 3.6 <= elapsed <= 4.4, f"burst 200 then 800 at 200/s is 4.0 s, took {elapsed:.2f}s"


def test_two_producers_share_one_limit(
    redis_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    results: list[ProducerSummary] = []

    def produce(folder: Path) -> None:
        settings = rate_settings(redis_url, folder)
        engine = Engine.from_settings(settings)  # its own connections, as on another host
        try:
            results.append(run_producer(settings, engine, threading.Event()))
        finally:
            engine.close()

    threads = []
    for name in ("a", "b"):
        make_files(tmp_path / name, 500)
        threads.append(threading.Thread(target=produce, args=(tmp_path / name,)))
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=20)
    elapsed = time.monotonic() - started
    with capsys.disabled():
        print(f"\n2 producers x 500 files sharing 200/s, burst 200: {elapsed:.3f}s")
    assert sorted(r.enqueued for r in results) == [500, 500]
    assert 3.6 <= elapsed <= 4.4, f"one shared bucket means ~4.0 s in all, took {elapsed:.2f}s"


def test_duplicates_cost_no_tokens(
    redis_url: str, engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A rescan of unchanged files is not throttled: tokens pay for enqueued jobs only."""
    make_files(tmp_path, 400)
    settings = producer_settings(redis_url, tmp_path, rate_limit_per_sec=2000, burst=400)
    taken: list[int] = []
    take_tokens = engine.take_tokens

    def counting(rate: float, burst: int, tokens: int = 1) -> float:
        wait = take_tokens(rate, burst, tokens)
        taken.append(tokens if wait == 0 else 0)
        return wait

    monkeypatch.setattr(engine, "take_tokens", counting)
    assert run_producer(settings, engine, threading.Event()).enqueued == 400
    assert sum(taken) == 400, "one token per enqueued job"
    taken.clear()
    again = run_producer(settings, engine, threading.Event())
    assert again.skipped_duplicate == 400 and taken == []


# -- backpressure ---------------------------------------------------------------------------


def drain(engine: Engine, queue: str, stop: threading.Event, seen_max: list[int]) -> None:
    """A worker stand-in: claim and ack until told to stop, noting the longest queue."""
    engine.registry.register("drainer", {}, [queue], ttl=30)
    while not stop.is_set():
        seen_max[0] = max(seen_max[0], engine.pending_length(queue))
        raws = engine.claim(queue, "drainer", 7)
        if raws:
            claimed: list[Claimed] = [engine.decode(queue, raw) for raw in raws]
            engine.ack(queue, "drainer", claimed)
        else:
            stop.wait(0.005)


def test_backpressure_pauses_at_max_pending_and_resumes_when_drained(
    redis_url: str, engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    recorder = RecordingLog()
    monkeypatch.setattr(producer_module, "log", recorder)
    make_files(tmp_path, 600)
    settings = producer_settings(
        redis_url, tmp_path, max_pending=100, batch_size=50, backpressure_poll="20ms"
    )
    stop, drained = threading.Event(), threading.Event()
    producer = Producer(settings, engine, stop)
    result: list[ProducerSummary] = []
    thread = threading.Thread(target=lambda: result.append(producer.run()))
    thread.start()
    try:
        wait_for(producer.paused.is_set, timeout=30)
        assert engine.pending_length("low") == 100, "filled up to max_pending, not past it"
        assert thread.is_alive() and producer.batcher.counts.enqueued == 100
        assert len(recorder.named("paused")) == 1
        seen_max = [0]
        drainer = threading.Thread(target=drain, args=(engine, "low", drained, seen_max))
        drainer.start()
        thread.join(timeout=20)
        assert not thread.is_alive()
    finally:
        stop.set()
        drained.set()
    drainer.join(timeout=5)
    assert result[0].enqueued == 600
    assert seen_max[0] <= 100
    pauses = recorder.named("paused")
    assert len(pauses) == producer.batcher.pauses >= 1, "one log line per pause"
    assert len(recorder.named("resumed")) == len(pauses)
    assert pauses[0] == {"queue": "low", "pending": 100, "max_pending": 100}


def test_stop_during_a_pause_leaves_nothing_half_done(
    redis_url: str, engine: Engine, tmp_path: Path
) -> None:
    make_files(tmp_path, 300)
    settings = producer_settings(
        redis_url, tmp_path, max_pending=100, batch_size=40, backpressure_poll="10m"
    )
    stop = threading.Event()
    producer = Producer(settings, engine, stop)
    thread = threading.Thread(target=producer.run)
    thread.start()
    wait_for(producer.paused.is_set, timeout=30)
    stop.set()  # the producer looks again only in 10 minutes: stop must cut the wait short
    thread.join(timeout=30)
    assert not thread.is_alive()
    assert engine.pending_length("low") == producer.summary.enqueued == 80


# -- stop, watch, errors ---------------------------------------------------------------------


def test_stop_ends_the_pass_after_the_current_batch(
    redis_url: str, engine: Engine, tmp_path: Path
) -> None:
    make_files(tmp_path, 1000)
    settings = producer_settings(redis_url, tmp_path, rate_limit_per_sec=500, burst=50)
    stop = threading.Event()
    producer = Producer(settings, engine, stop)
    thread = threading.Thread(target=producer.run)
    thread.start()
    wait_for(lambda: engine.pending_length("low") >= 100, timeout=30)
    stop.set()
    thread.join(timeout=5)
    assert not thread.is_alive()
    enqueued = producer.summary.enqueued
    assert 100 <= enqueued < 1000
    assert engine.pending_length("low") == enqueued, "every counted job is in Redis, no more"
    unlimited = producer_settings(redis_url, tmp_path)
    resumed = run_producer(unlimited, engine, threading.Event())
    assert resumed.enqueued == 1000 - enqueued, "a re-run picks up exactly the rest"


def test_watch_mode_rescans_until_stopped(redis_url: str, engine: Engine, tmp_path: Path) -> None:
    make_files(tmp_path, 3)
    settings = producer_settings(redis_url, tmp_path, watch_interval="50ms")
    stop = threading.Event()
    result: list[ProducerSummary] = []
    thread = threading.Thread(target=lambda: result.append(run_producer(settings, engine, stop)))
    thread.start()
    try:
        wait_for(lambda: engine.pending_length("low") == 3, timeout=30)
        (tmp_path / "new.pdf").write_text("arrived later")
        wait_for(lambda: engine.pending_length("high") == 1, timeout=30)
    finally:
        stop.set()
        thread.join(timeout=5)
    assert result[0].enqueued == 4 and result[0].skipped_duplicate >= 3


def test_missing_scan_dir_is_one_clear_operational_error(
    redis_url: str, engine: Engine, tmp_path: Path
) -> None:
    settings = producer_settings(redis_url, tmp_path / "absent")
    with pytest.raises(OperationalError, match="absent"):
        run_producer(settings, engine, threading.Event())


def test_redis_failure_mid_pass_is_an_operational_error(tmp_path: Path) -> None:
    make_files(tmp_path, 5)
    settings = producer_settings("redis://127.0.0.1:1/0", tmp_path)
    engine = Engine.from_settings(settings)
    try:
        with pytest.raises(OperationalError, match="run again"):
            run_producer(settings, engine, threading.Event())
    finally:
        engine.close()


# -- admin enqueue --------------------------------------------------------------------------


def test_enqueue_paths_enqueues_even_unchanged_files(
    redis_url: str, engine: Engine, tmp_path: Path
) -> None:
    make_files(tmp_path / "dir", 3)
    single = tmp_path / "one.pdf"
    single.write_text("x")
    settings = producer_settings(redis_url, tmp_path)
    assert run_producer(settings, engine, threading.Event()).enqueued == 4

    summary = enqueue_paths(settings, engine, [str(single), str(tmp_path / "dir")], None, 0.0)
    assert (summary.enqueued, summary.skipped_duplicate) == (4, 0)
    assert engine.pending_length("high") == 2 and engine.pending_length("low") == 6
    keys = {job.idempotency_key for job in pending_jobs(engine, "low")}
    assert len(keys) == 6, "each explicit enqueue is its own job with its own key"

    delayed = enqueue_paths(settings, engine, [str(single)], "low", 30.0)
    assert delayed.enqueued == 1
    assert engine.pending_length("low") == 6, "a delayed job waits in the scheduled set"
    assert engine.client.zcard(engine.keys.queue("low").scheduled) == 1


def test_enqueue_paths_refuses_bad_requests_before_enqueuing(
    redis_url: str, engine: Engine, tmp_path: Path
) -> None:
    good = tmp_path / "a.txt"
    good.write_text("a")
    settings = producer_settings(redis_url, tmp_path)
    with pytest.raises(UsageError, match="not a file or folder"):
        enqueue_paths(settings, engine, [str(good), str(tmp_path / "missing")], None, 0.0)
    with pytest.raises(UsageError, match="unknown priority 'urgent'"):
        enqueue_paths(settings, engine, [str(good)], "urgent", 0.0)
    assert engine.pending_length("low") == 0


# -- progress -------------------------------------------------------------------------------


def test_progress_on_a_terminal_leaves_a_one_line_summary() -> None:
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=200)
    counts = ProducerSummary(seen=10, enqueued=7, skipped_duplicate=2, skipped_error=1)
    with open_reporter("producer", terminal=True, console=console) as reporter:
        reporter.update(counts)
        reporter.finish(counts, 2.0)
    last = out.getvalue().rstrip().splitlines()[-1]
    assert last.endswith(
        "producer: 10 seen, 7 enqueued, 2 duplicate, 1 failed in 2.00s (5 files/s)"
    )


def test_progress_off_a_terminal_is_structured_log_lines(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from jobqueue.roles import progress

    recorder = RecordingLog()
    monkeypatch.setattr(progress, "log", recorder)
    counts = ProducerSummary(seen=4, enqueued=4)
    with open_reporter("producer", terminal=False) as reporter:
        reporter.update(counts)
        reporter.finish(counts, 0.5)
    (fields,) = recorder.named("pass done")
    assert fields["seen"] == 4 and fields["enqueued"] == 4 and fields["files_per_s"] == 8.0


# -- the command line -----------------------------------------------------------------------


@pytest.fixture
def cli_config(redis_url: str, tmp_path: Path) -> Path:
    return write_config(tmp_path / "config.yaml", producer_settings(redis_url, tmp_path))


def test_cli_admin_enqueue(redis_url: str, cli_config: Path, tmp_path: Path) -> None:
    files = make_files(tmp_path / "in", 2, ".txt")
    runner = CliRunner()
    config = ["--config", str(cli_config)]
    args = ["admin", "enqueue", *map(str, files), "--priority", "high", "--delay", "30s"]
    result = runner.invoke(app, [*args, *config])
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("enqueue: 2 seen, 2 enqueued")
    engine = Engine.from_settings(make_settings(redis_url))
    try:
        assert engine.client.zcard(engine.keys.queue("high").scheduled) == 2
        assert engine.pending_length("low") == 0
    finally:
        engine.close()

    bad = runner.invoke(app, ["admin", "enqueue", str(files[0]), "--delay", "soon", *config])
    assert bad.exit_code == 2 and "--delay" in bad.stderr
    missing = runner.invoke(app, ["admin", "enqueue", str(tmp_path / "nope"), *config])
    assert missing.exit_code == 2 and "not a file or folder" in missing.stderr
