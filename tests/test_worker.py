"""The worker role in-process, against a real Redis."""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from jobqueue.config import Settings
from jobqueue.engine import Engine, RetryPolicy
from jobqueue.job import new_job
from jobqueue.observe.metrics import Metrics
from jobqueue.roles.breaker import BreakerState
from jobqueue.roles.reaper import Reaper
from tests import sample_handlers
from tests.conftest import make_settings
from tests.helpers import running_worker, settled, stats_of, wait_for


@pytest.fixture(autouse=True)
def _clear_calls() -> Iterator[None]:
    sample_handlers.CALLS.clear()
    yield
    sample_handlers.CALLS.clear()


def python_settings(redis_url: str, fn: str = "record", **worker: object) -> Settings:
    return make_settings(
        redis_url,
        worker={
            "count": 4,
            "heartbeat_ttl": "2s",
            "claim_timeout": "200ms",
            "promote_interval": "50ms",
            "shutdown_grace": "5s",
            "backoff": {"base": "10ms", "max": "50ms"},
            "allowed_roots": ["/"],
            "handler": {"type": "python", "callable": f"tests.sample_handlers:{fn}"},
            **worker,
        },
    )


def enqueue(engine: Engine, n: int, priority: str = "high", **fields: object) -> list[str]:
    jobs = [new_job(f"/data/{priority}/{i}", priority, **fields) for i in range(n)]
    engine.enqueue_many([(job, priority) for job in jobs])
    return [job.id for job in jobs]


def test_jobs_complete_and_lists_drain(redis_url: str) -> None:
    settings = python_settings(redis_url)
    engine = Engine.from_settings(settings)
    ids = enqueue(engine, 300) + enqueue(engine, 100, "low")
    with running_worker(settings):
        wait_for(lambda: settled(settings, engine, 400))
    stats = stats_of(settings, engine)
    assert stats.completed == 400 and stats.dead_letter == 0
    assert sorted(j.id for j in sample_handlers.CALLS) == sorted(ids)
    assert stats.registered == 0, "a stopped worker deregisters"


def test_failures_retry_with_backoff_then_dead_letter(redis_url: str) -> None:
    settings = python_settings(redis_url, max_retries=2)
    engine = Engine.from_settings(settings)
    engine.enqueue(new_job("/data/fail-me", "high"), "high")
    with running_worker(settings):
        wait_for(lambda: settled(settings, engine, 1))
    stats = stats_of(settings, engine)
    assert stats.dead_letter == 1 and stats.completed == 0
    assert stats.queues["high"].counters["retried"] == 2
    assert len(sample_handlers.CALLS) == 3  # first attempt + max_retries
    assert [j.retries for j in sample_handlers.CALLS] == [0, 1, 2]


def test_poison_payloads_go_to_the_dlq_and_the_worker_keeps_going(
    redis_url: str, raw_redis: redis.Redis
) -> None:
    settings = python_settings(redis_url)
    engine = Engine.from_settings(settings)
    pending = engine.keys.queue("high").pending
    raw_redis.lpush(pending, b"not json at all")
    raw_redis.lpush(pending, json.dumps({"id": 7, "filepath": ["x"], "priority": 1}))
    raw_redis.lpush(pending, b'{"id": "big", "filepath": "' + b"x" * (2 << 20) + b'"}')
    good = enqueue(engine, 20)
    with running_worker(settings):
        wait_for(lambda: settled(settings, engine, 23))
    stats = stats_of(settings, engine)
    assert stats.dead_letter == 3 and stats.completed == 20
    assert sorted(j.id for j in sample_handlers.CALLS) == sorted(good)
    reasons = [
        json.loads(e)["last_error"] for e in raw_redis.lrange(engine.keys.queue("high").dead, 0, -1)
    ]
    assert any("max_payload_bytes" in r for r in reasons)
    assert sum("malformed" in r for r in reasons) == 2


def test_weighted_priorities_give_low_its_share_with_one_busy_slot(redis_url: str) -> None:
    settings = python_settings(redis_url, count=1, weights={"high": 8, "low": 2})
    engine = Engine.from_settings(settings)
    enqueue(engine, 300, "high", sleep_ms=2)
    enqueue(engine, 300, "low", sleep_ms=2)
    with running_worker(settings):
        wait_for(lambda: len(sample_handlers.CALLS) >= 200)
    early = [job.priority for job in sample_handlers.CALLS[:200]]
    low_share = early.count("low") / len(early)
    assert 0.1 <= low_share <= 0.3, f"low got {low_share:.0%} of early completions"


def test_idempotent_job_already_done_is_acked_without_running(redis_url: str) -> None:
    settings = python_settings(redis_url)
    engine = Engine.from_settings(settings)
    first = new_job("/data/a", "high", idempotency_key="same-effect")
    engine.enqueue(first, "high")
    raw = engine.claim("high", "earlier-worker", 1)[0]
    engine.ack("high", "earlier-worker", [engine.decode("high", raw)])
    # A duplicate copy (as after a reap) bypasses the enqueue-time dedupe.
    engine.client.lpush(engine.keys.queue("high").pending, first.to_json())
    with running_worker(settings):
        wait_for(lambda: settled(settings, engine, 2))
    assert sample_handlers.CALLS == []
    assert stats_of(settings, engine).completed == 2


def test_long_job_keeps_its_heartbeat_and_is_never_reaped(redis_url: str) -> None:
    settings = python_settings(
        redis_url, count=1, heartbeat_ttl="1s", claim_timeout="200ms", job_timeout="30s"
    )
    settings.reaper.interval = 0.1
    engine = Engine.from_settings(settings)
    enqueue(engine, 1, sleep_ms=4000)  # 4x the heartbeat TTL
    with running_worker(settings, with_reaper=True):
        wait_for(lambda: settled(settings, engine, 1), timeout=15)
    stats = stats_of(settings, engine)
    assert len(sample_handlers.CALLS) == 1
    assert stats.completed == 1
    assert stats.queues["high"].counters.get("reaped", 0) == 0


def test_sync_python_job_timeout_fails_the_job_and_the_slot_moves_on(redis_url: str) -> None:
    settings = python_settings(
        redis_url, fn="sleep_long", count=1, job_timeout="300ms", max_retries=0
    )
    engine = Engine.from_settings(settings)
    enqueue(engine, 2)
    started = time.monotonic()
    with running_worker(settings):
        wait_for(lambda: settled(settings, engine, 2))
    assert time.monotonic() - started < 5
    dead = [json.loads(e) for e in engine.client.lrange(engine.keys.queue("high").dead, 0, -1)]
    assert len(dead) == 2 and all("job_timeout" in d["last_error"] for d in dead)


def test_async_python_handler_runs_and_times_out(redis_url: str) -> None:
    settings = python_settings(redis_url, fn="async_sleep", job_timeout="200ms", max_retries=0)
    engine = Engine.from_settings(settings)
    enqueue(engine, 5, sleep_ms=1)
    engine.enqueue(new_job("/data/slow", "high", sleep_ms=2000), "high")
    with running_worker(settings):
        wait_for(lambda: settled(settings, engine, 6))
    stats = stats_of(settings, engine)
    assert (stats.completed, stats.dead_letter) == (5, 1)


def test_exec_handler_argv_env_stderr_and_timeout(
    redis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    script = tmp_path / "handler.py"
    script.write_text(
        "import os, sys, time\n"
        "path, job_id = sys.argv[1], sys.argv[2]\n"
        "assert os.environ['JOBQUEUE_JOB_ID'] == job_id\n"
        "if 'slow' in path: time.sleep(10)\n"
        "if 'bad' in path: sys.stderr.write('cannot parse ' + path); sys.exit(3)\n"
        "open(os.environ['OUT'], 'a').write(path + '\\n')\n"
    )
    out = tmp_path / "out.txt"
    settings = python_settings(
        redis_url,
        max_retries=0,
        job_timeout="1s",
        allowed_roots=[str(tmp_path)],
        handler={"type": "exec", "command": [sys.executable, str(script), "{filepath}", "{id}"]},
    )
    engine = Engine.from_settings(settings)
    names = ["ok one.txt", "bad.txt", "slow.txt", "ok-'quote'.txt"]
    for name in names:
        engine.enqueue(new_job(str(tmp_path / name), "high"), "high")
    engine.enqueue(new_job("/etc/passwd", "high"), "high")
    monkeypatch.setenv("OUT", str(out))
    with running_worker(settings):
        wait_for(lambda: settled(settings, engine, 5))
    assert sorted(out.read_text().splitlines()) == sorted(
        [str(tmp_path / "ok one.txt"), str(tmp_path / "ok-'quote'.txt")]
    )
    errors = sorted(
        json.loads(e)["last_error"]
        for e in engine.client.lrange(engine.keys.queue("high").dead, 0, -1)
    )
    assert any("exit 3" in e and "cannot parse" in e for e in errors)
    assert any("killed after job_timeout" in e for e in errors)
    assert any("outside worker.allowed_roots" in e for e in errors)


def test_half_open_breaker_admits_one_probe_among_many_slots(redis_url: str) -> None:
    settings = python_settings(
        redis_url, count=8, max_retries=50, backoff={"base": "1s", "max": "1s"}
    )
    settings.circuit_breaker.min_samples = 4
    settings.circuit_breaker.cooldown_period = 0.3
    engine = Engine.from_settings(settings)
    engine.enqueue_many(
        [(new_job(f"/data/fail-{i}", "high", sleep_ms=20), "high") for i in range(300)]
    )
    half_opens: list[float] = []
    with running_worker(settings) as worker:
        inner = worker.breaker._on_change
        assert inner is not None

        def spy(old: BreakerState, new: BreakerState) -> None:
            if new is BreakerState.HALF_OPEN:
                half_opens.append(time.monotonic())
            inner(old, new)

        worker.breaker._on_change = spy
        inflight = worker.metrics.jobs_inflight

        def quiet_and_open() -> bool:
            return worker.breaker.state is BreakerState.OPEN and inflight._value.get() == 0

        wait_for(quiet_and_open)
        calls_before, half_opens_before = len(sample_handlers.CALLS), len(half_opens)
        wait_for(lambda: len(half_opens) >= half_opens_before + 3, timeout=10)
        wait_for(quiet_and_open)
        calls = len(sample_handlers.CALLS) - calls_before
        probes = len(half_opens) - half_opens_before
    assert probes >= 3
    assert calls == probes, f"{calls} jobs ran during {probes} half-open periods"


def test_reaper_requeues_a_dead_workers_jobs(redis_url: str, settings: Settings) -> None:
    engine = Engine.from_settings(settings)
    enqueue(engine, 3)
    engine.register("ghost", {"queues": ["high"]}, ttl=0.05)
    engine.claim("high", "ghost", 3)
    time.sleep(0.1)
    reaper = Reaper(settings, engine, Metrics(), threading.Event())
    assert reaper.sweep() == 3
    assert engine.pending_length("high") == 3
    assert engine.registered_workers() == {}
    assert reaper.sweep() == 0
    assert all(
        engine.decode("high", r).job.retries == 1  # type: ignore[union-attr]
        for r in engine.claim("high", "w", 3)
    )


def test_policy_backoff_is_bounded_full_jitter() -> None:
    policy = RetryPolicy(max_retries=5, base=0.5, cap=10)
    samples = [policy.backoff(r) for r in range(1, 10) for _ in range(50)]
    assert min(samples) >= 0 and max(samples) <= 10
    assert max(policy.backoff(1) for _ in range(200)) <= 0.5


def test_live_worker_settles_jobs_left_in_its_own_processing_list(redis_url: str) -> None:
    """As after an ack lost in a failover: the job sits in a live slot's list, unknown to it."""
    settings = python_settings(redis_url, count=1, heartbeat_ttl="1s", claim_timeout="200ms")
    engine = Engine.from_settings(settings)
    orphan = new_job("/data/orphan", "high")
    with running_worker(settings) as worker:
        (slot,) = worker.slots
        engine.client.lpush(engine.keys.queue("high").processing(slot.worker_id), orphan.to_json())
        wait_for(lambda: stats_of(settings, engine).completed == 1, timeout=5)
    assert [job.id for job in sample_handlers.CALLS] == [orphan.id]
