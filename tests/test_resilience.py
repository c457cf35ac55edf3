"""Faults that must never stop a worker or the reaper, or strand a job (found in review)."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
import redis

from jobqueue.engine import Engine
from jobqueue.job import new_job
from jobqueue.observe.metrics import Metrics
from jobqueue.roles.breaker import BreakerState
from jobqueue.roles.reaper import Reaper
from jobqueue.roles.worker import WorkerProcess
from tests import sample_handlers
from tests.helpers import running_worker, settled, stats_of, wait_for
from tests.test_worker import python_settings


def full_disk_ledger(directory: Path) -> str:
    """A ledger folder whose file for today is /dev/full: every write fails with ENOSPC."""
    day = datetime.now(UTC).strftime("%Y-%m-%d")
    (directory / f"events-{day}.ndjson").symlink_to("/dev/full")
    return str(directory)


def test_slot_survives_a_handler_sys_exit_and_a_full_ledger_disk(
    redis_url: str, tmp_path: Path
) -> None:
    settings = python_settings(redis_url, fn="exit_process", count=1, max_retries=0)
    settings.observability.ledger.dir = full_disk_ledger(tmp_path)
    engine = Engine.from_settings(settings)
    engine.enqueue_many([(new_job(f"/data/{i}", "high"), "high") for i in range(3)])
    with running_worker(settings) as worker:
        wait_for(lambda: settled(settings, engine, 3))
        assert all(slot.is_alive() for slot in worker.slots)
    dead = engine.client.lrange(engine.keys.queue("high").dead, 0, -1)
    assert len(dead) == 3 and all(b"SystemExit" in entry for entry in dead)


def test_a_redis_error_during_the_probe_does_not_freeze_the_breaker(
    redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = python_settings(redis_url, count=2, max_retries=0)
    settings.circuit_breaker.min_samples = 1
    settings.circuit_breaker.failure_threshold = 1.0
    settings.circuit_breaker.cooldown_period = 0.2
    engine = Engine.from_settings(settings)
    engine.enqueue(new_job("/data/fail-first", "high"), "high")
    with running_worker(settings) as worker:
        wait_for(lambda: worker.breaker.state is BreakerState.OPEN)
        real = worker.engine.done_flags
        failed_once = threading.Event()

        def flaky(queue: str, keys: list[str]) -> list[bool]:
            if not failed_once.is_set():
                failed_once.set()
                raise redis.ConnectionError("blip during the probe")
            return real(queue, keys)

        monkeypatch.setattr(worker.engine, "done_flags", flaky)
        keyed = [new_job(f"/data/ok-{i}", "high", idempotency_key=f"k{i}") for i in range(5)]
        engine.enqueue_many([(job, "high") for job in keyed])
        wait_for(lambda: settled(settings, engine, 6), timeout=15)
        assert failed_once.is_set()
        assert worker.breaker.state is BreakerState.CLOSED
    assert stats_of(settings, engine).completed == 5


def test_reaper_keeps_recovering_when_its_ledger_cannot_be_written(
    redis_url: str, tmp_path: Path
) -> None:
    settings = python_settings(redis_url)
    settings.observability.ledger.dir = full_disk_ledger(tmp_path)
    settings.reaper.interval = 0.05
    engine = Engine.from_settings(settings)
    for worker_id in ("w1", "w2"):
        engine.enqueue(new_job(f"/data/{worker_id}", "high"), "high")
        engine.register(worker_id, {"queues": ["high"]}, ttl=0.05)
        engine.claim("high", worker_id, 1)
    stop = threading.Event()
    reaper = threading.Thread(target=Reaper(settings, engine, Metrics(), stop).run)
    reaper.start()
    try:
        wait_for(lambda: engine.pending_length("high") == 2)
        assert engine.registered_workers() == {}
    finally:
        stop.set()
        reaper.join(5)


def test_sigterm_while_a_slot_blocks_in_blmove_strands_nothing(redis_url: str) -> None:
    """shutdown_grace shorter than claim_timeout: a job that arrives just after the stop may
    land in the blocked slot's list. It must be back in its queue before run() returns."""
    settings = python_settings(
        redis_url, count=1, shutdown_grace="100ms", claim_timeout="1s", heartbeat_ttl="3s"
    )
    engine = Engine.from_settings(settings)
    sample_handlers.CALLS.clear()
    stop = threading.Event()
    worker = WorkerProcess(settings, engine, Metrics(), stop)
    runner = threading.Thread(target=worker.run)
    runner.start()
    wait_for(lambda: stats_of(settings, engine).workers == 1)
    time.sleep(0.1)  # let the idle slot enter its blocking claim
    stop.set()
    time.sleep(0.15)  # past the grace, while BLMOVE still waits
    engine.enqueue(new_job("/data/late", "high"), "high")
    runner.join(10)
    assert engine.pending_length("high") == 1
    assert stats_of(settings, engine).queues["high"].processing == 0
    assert engine.registered_workers() == {}
    assert sample_handlers.CALLS == []
