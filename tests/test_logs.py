"""Logs that answer "what happened to my job?", and an outage told in two lines per process."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from jobqueue.engine import BACKOFF_CAP, Engine, Outage, Reconnect
from jobqueue.job import new_job
from jobqueue.observe.logs import clip, configure_logging
from jobqueue.roles.promoter import Promoter
from tests.conftest import make_settings
from tests.helpers import local_worker, settled, spawn, stop_process, wait_for, write_config
from tests.logging_handlers import LONG_TAIL
from tests.redis_server import RedisServer
from tests.test_worker import python_settings

JOB_FIELDS = {"job_id", "queue", "worker", "filepath", "attempt", "trace_id", "component"}
Lines = Callable[[], list[dict[str, Any]]]


def parse(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


@pytest.fixture
def json_logs(capsys: pytest.CaptureFixture[str]) -> Iterator[Lines]:
    """The real logging pipeline, JSON, at info; returns a reader of what it wrote so far."""
    configure_logging("info", "json")
    seen: list[dict[str, Any]] = []

    def lines() -> list[dict[str, Any]]:
        seen.extend(parse(capsys.readouterr().err))
        return seen

    yield lines
    configure_logging("warning", "json")


def test_a_jobs_failures_retry_and_dead_letter_are_logged_with_its_fields(
    redis_url: str, json_logs: Lines
) -> None:
    handler = {"type": "python", "callable": "tests.logging_handlers:log_and_fail"}
    settings = python_settings(redis_url, count=2, max_retries=1, handler=handler)
    engine = Engine.from_settings(settings)
    job = new_job("/data/report.pdf", "high")
    engine.enqueue(job, "high")
    engine.client.rpush(engine.keys.queue("high").pending, b"not json")
    promoter = Promoter(engine, ["high"], 0.02)  # a supervisor's, which local_worker lacks
    promoter.start()
    with local_worker(settings):
        wait_for(lambda: settled(settings, engine, 2))
    promoter.halt()
    promoter.join()
    lines = json_logs()
    assert all("component" in line for line in lines), lines
    mine = [line for line in lines if line.get("job_id") == job.id]
    assert all(set(line) >= JOB_FIELDS for line in mine), mine
    assert {line["filepath"] for line in mine} == {job.filepath}
    by_event = {(line["event"], line["attempt"]): line for line in mine}

    said = by_event[("handler working", 1)]  # the handler's own lines carry the job's fields
    assert said["component"] == "handler" and said["trace_id"] == job.trace_id
    stdlib = by_event[("stdlib line from a library", 1)]
    assert stdlib["component"] == "thirdparty.client"

    retry = by_event[("job failed; retry scheduled", 1)]
    assert retry["level"] == "warning" and retry["due"] and retry["retry_in_s"] >= 0
    assert retry["error"].startswith("RuntimeError: cannot convert xxx")
    assert retry["error"].endswith(LONG_TAIL) and len(retry["error"]) < 600

    dead = by_event[("job dead-lettered", 2)]
    assert dead["level"] == "error" and dead["reason"] == "out of retries (1)"
    assert dead["error"].endswith(LONG_TAIL)

    (malformed,) = [line for line in lines if line.get("job_id") == "(malformed)"]
    assert malformed["event"] == "job dead-lettered" and malformed["level"] == "error"
    assert "malformed" in malformed["reason"] and set(malformed) >= JOB_FIELDS


def test_clip_keeps_the_start_and_the_end() -> None:
    assert clip("short") == "short"
    clipped = clip("A" * 1000 + "Z" * 1000, 100)
    assert clipped.startswith("A" * 40) and clipped.endswith("Z" * 60)
    assert "[1900 chars]" in clipped


def test_loops_that_lost_redis_together_do_not_retry_in_lockstep() -> None:
    """Each loop's waits are jittered, at the cap too, and never near zero."""
    outage = Outage("redis")
    loops = [Reconnect(outage, f"loop-{i}") for i in range(50)]
    for failures in range(1, 40):
        waits = [loop.failed(ConnectionError("refused")) for loop in loops]
        assert len(set(waits)) > 40, (failures, waits)
        ceiling = min(BACKOFF_CAP, 0.05 * 2**failures)
        assert all(ceiling / 2 <= wait <= ceiling for wait in waits)


def test_an_outage_is_one_warning_and_one_recovery_line(json_logs: Lines) -> None:
    outage = Outage("redis://127.0.0.1:1/0")
    backs: list[int] = []
    forget = outage.when_back(lambda: backs.append(1))
    loops = [Reconnect(outage, f"loop-{i}") for i in range(8)]
    for _ in range(5):
        for loop in loops:
            loop.failed(ConnectionError("Connection refused"))
    for loop in loops:
        loop.succeeded()
    forget()
    loops[0].failed(ConnectionError("Connection refused"))
    loops[0].succeeded()
    levels = Counter((line["level"], line["event"]) for line in json_logs())
    assert levels[("warning", "lost Redis; retrying with backoff")] == 2
    assert levels[("info", "Redis back")] == 2
    assert sum(levels.values()) == 4, levels
    assert backs == [1], "called once per outage, until forgotten"


def test_an_error_reply_is_a_refusal_logged_once_not_an_outage(json_logs: Lines) -> None:
    """NOPERM from an ACL without a command used to be logged as "lost Redis" (the reaper
    under the shipped ACL, before it had TIME): Redis answered, so it is a refusal, named
    once per loop until it changes or the call succeeds."""
    outage = Outage("redis://127.0.0.1:1/0")
    loop = Reconnect(outage, "jobqueue.reaper")
    for _ in range(5):
        loop.failed(redis.ResponseError("NOPERM this user has no permissions to run 'time'"))
    loop.failed(redis.ResponseError("OOM command not allowed when used memory > 'maxmemory'"))
    assert not outage.down
    events = [(line["level"], line["event"], line["error"][:5]) for line in json_logs()]
    refused = "Redis refused a command; retrying with backoff"
    assert events == [("warning", refused, "NOPER"), ("warning", refused, "OOM c")]


@pytest.fixture
def own_redis() -> Iterator[RedisServer]:
    server = RedisServer().start()  # not persistent: it comes back empty
    yield server
    server.cleanup()


def test_a_busy_worker_logs_an_outage_once_per_process_and_registers_again_at_once(
    own_redis: RedisServer, tmp_path: Path
) -> None:
    """An 8-slot worker running jobs when Redis goes: one "lost Redis" and one "Redis back"
    line per process (supervisor, worker process), whatever its slots and loops did meanwhile;
    and when Redis comes back empty, the worker registers again at once, not at its next
    renewal (ttl/3: 40 s here)."""
    settings = make_settings(
        own_redis.url,
        redis={"dial_timeout": "500ms", "read_timeout": "1s"},
        worker={
            "count": 8,
            "heartbeat_ttl": "2m",
            "claim_timeout": "200ms",
            "promote_interval": "100ms",
            "allowed_roots": ["/"],
            "handler": {"type": "python", "callable": "tests.sample_handlers:record"},
        },
        observability={"log_level": "debug", "queue_sample_interval": 0},
    )
    engine = Engine.from_settings(settings)
    jobs = [new_job(f"/data/{i}", "high", sleep_ms=300) for i in range(40)]
    engine.enqueue_many([(job, "high") for job in jobs])
    worker = spawn("worker", write_config(tmp_path / "config.yaml", settings))
    log_file = lambda: next(tmp_path.glob("worker-*.log"))  # noqa: E731

    def events(name: str) -> Counter[int]:
        """How many lines named ``name`` each process wrote."""
        lines = parse(log_file().read_text())
        return Counter(line["pid"] for line in lines if line["event"] == name)

    try:
        wait_for(lambda: engine.registry.workers() and engine.pending_length("high") < 40)
        own_redis.stop()
        wait_for(lambda: len(events("lost Redis; retrying with backoff")) == 2)
        retries = lambda: events("Redis still unreachable").values()  # noqa: E731
        wait_for(lambda: len(retries()) == 2 and min(retries()) >= 3)
        own_redis.start()
        wait_for(engine.registry.workers, timeout=20)
        wait_for(lambda: len(events("Redis back")) == 2)
    finally:
        assert stop_process(worker) == 0
        engine.close()
    lines = parse(log_file().read_text())
    assert all("component" in line for line in lines)
    assert set(events("lost Redis; retrying with backoff").values()) == {1}
    assert set(events("Redis back").values()) == {1}
    told = [line["event"] for line in lines if line["level"] != "debug" and "error" in line]
    assert told == ["lost Redis; retrying with backoff"] * 2, "no other line tells of it"
