"""Faults that must never stop a worker or the reaper, or strand a job (found in review)."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest
import redis

from jobqueue.engine import Engine
from jobqueue.job import new_job
from jobqueue.observe.metrics import Metrics
from jobqueue.roles.reaper import Reaper
from jobqueue.roles.worker.breaker import BreakerState
from tests.helpers import local_worker, running_worker, settled, stats_of, wait_for
from tests.test_worker import python_settings


def full_disk_ledger(directory: Path) -> str:
    """A ledger folder whose file for today is /dev/full: every write fails with ENOSPC."""
    day = datetime.now(UTC).strftime("%Y-%m-%d")
    (directory / f"events-{day}.ndjson").symlink_to("/dev/full")
    return str(directory)


def test_worker_survives_a_handler_sys_exit_and_a_full_ledger_disk(
    redis_url: str, tmp_path: Path
) -> None:
    settings = python_settings(redis_url, fn="exit_process", count=1, max_retries=0)
    settings.observability.ledger.dir = full_disk_ledger(tmp_path)
    engine = Engine.from_settings(settings)
    engine.enqueue_many([(new_job(f"/data/{i}", "high"), "high") for i in range(3)])
    with running_worker(settings) as worker:
        wait_for(lambda: settled(settings, engine, 3))
        (child,) = worker.children
        assert child.process.is_alive(), "the same worker process ran all three"
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
    with local_worker(settings) as worker:
        ctx = worker.ctx
        wait_for(lambda: ctx.breaker.state is BreakerState.OPEN)
        real = ctx.engine.batch
        failed_once = threading.Event()

        def flaky() -> object:
            if ctx.breaker.state is not BreakerState.CLOSED and not failed_once.is_set():
                failed_once.set()
                raise redis.ConnectionError("blip during the probe")
            return real()

        monkeypatch.setattr(ctx.engine, "batch", flaky)
        engine.enqueue_many([(new_job(f"/data/ok-{i}", "high"), "high") for i in range(5)])
        wait_for(lambda: settled(settings, engine, 6), timeout=30)
        assert failed_once.is_set()
        assert ctx.breaker.state is BreakerState.CLOSED
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
        engine.registry.register(worker_id, {}, ["high"], ttl=0.05)
        engine.start("high", worker_id, engine.claim("high", worker_id, 1) or [])
    stop = threading.Event()
    reaper = threading.Thread(target=Reaper(settings, engine, Metrics(), stop).run)
    reaper.start()
    try:
        wait_for(lambda: engine.pending_length("high") == 2)
        wait_for(lambda: engine.registry.workers() == {})
    finally:
        stop.set()
        reaper.join(5)


def test_a_job_that_arrives_while_the_worker_stops_is_not_stranded(redis_url: str) -> None:
    """The wakers wait on the queue without taking anything from it: a job enqueued while
    the worker stops stays in its queue, whatever the wakers were doing."""
    settings = python_settings(
        redis_url, count=1, shutdown_grace="100ms", claim_timeout="1s", heartbeat_ttl="3s"
    )
    engine = Engine.from_settings(settings)
    with running_worker(settings):
        wait_for(lambda: stats_of(settings, engine).workers == 1)
        wait_for(lambda: engine.client.client_list(_type="normal"))  # wakers are waiting
        late = threading.Timer(0.05, lambda: engine.enqueue(new_job("/data/late", "high"), "high"))
        late.start()
    late.join()
    stats = stats_of(settings, engine)
    assert engine.pending_length("high") + stats.completed == 1
    assert stats.queues["high"].processing == 0 and stats.registered == 0
