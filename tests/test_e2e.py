"""End to end: real `jobqueue` processes, real signals, a real Redis that restarts."""

from __future__ import annotations

import json
import signal
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from jobqueue.config import Settings
from jobqueue.engine import Engine
from jobqueue.job import new_job
from tests.conftest import make_settings
from tests.helpers import settled, spawn, stats_of, stop_process, wait_for, write_config
from tests.redis_server import RedisServer

pytestmark = pytest.mark.e2e


def e2e_settings(redis_url: str, **worker: object) -> Settings:
    return make_settings(
        redis_url,
        worker={
            "count": 4,
            "heartbeat_ttl": "1s",
            "claim_timeout": "200ms",
            "promote_interval": "100ms",
            "shutdown_grace": "1s",
            "allowed_roots": ["/"],
            "handler": {"type": "python", "callable": "tests.sample_handlers:append_to_log"},
            **worker,
        },
        reaper={"interval": "250ms"},
    )


@pytest.fixture
def log_file(tmp_path: Path) -> Path:
    return tmp_path / "executions.log"


def executions(log_file: Path) -> Counter[str]:
    return Counter(log_file.read_text().split()) if log_file.exists() else Counter()


def enqueue(engine: Engine, n: int, sleep_ms: int) -> list[str]:
    jobs = [new_job(f"/data/{i}", "high", sleep_ms=sleep_ms) for i in range(n)]
    engine.enqueue_many([(job, "high") for job in jobs])
    return [job.id for job in jobs]


def test_sigkill_mid_run_loses_nothing(redis_url: str, tmp_path: Path, log_file: Path) -> None:
    settings = e2e_settings(redis_url)
    config = write_config(tmp_path / "config.yaml", settings)
    engine = Engine.from_settings(settings)
    ids = enqueue(engine, 600, sleep_ms=5)
    env = {"JQ_TEST_LOG": str(log_file)}
    victims = [spawn("worker", config, **env) for _ in range(2)]
    survivor = spawn("worker", config, **env)
    reaper = spawn("reaper", config, **env)
    try:
        wait_for(lambda: sum(executions(log_file).values()) >= 150)
        held = stats_of(settings, engine).queues["high"].processing
        for victim in victims:
            victim.send_signal(signal.SIGKILL)
            victim.wait()
        wait_for(lambda: settled(settings, engine, 600), timeout=60)
    finally:
        for proc in (survivor, reaper):
            assert stop_process(proc) == 0
    stats = stats_of(settings, engine)
    assert (stats.completed, stats.dead_letter) == (600, 0)
    ran = executions(log_file)
    assert set(ran) == set(ids), "every job ran"
    reruns = sum(count - 1 for count in ran.values())
    # Re-executions are bounded by what the killed workers held (prefetch included).
    assert reruns <= max(held, 2 * 4 * settings.worker.prefetch)
    assert stats.queues["high"].counters.get("reaped", 0) >= 1


def test_recovery_after_sigkill_within_ttl_plus_interval(
    redis_url: str, tmp_path: Path, log_file: Path
) -> None:
    settings = e2e_settings(redis_url, count=1)
    config = write_config(tmp_path / "config.yaml", settings)
    engine = Engine.from_settings(settings)
    enqueue(engine, 1, sleep_ms=60_000)
    reaper = spawn("reaper", config)
    worker = spawn("worker", config, JQ_TEST_LOG=str(log_file))
    try:
        wait_for(lambda: stats_of(settings, engine).queues["high"].processing == 1)
        worker.send_signal(signal.SIGKILL)
        worker.wait()
        killed_at = time.monotonic()
        wait_for(lambda: engine.pending_length("high") == 1, timeout=10, interval=0.01)
        recovery = time.monotonic() - killed_at
    finally:
        assert stop_process(reaper) == 0
    bound = settings.worker.heartbeat_ttl + settings.reaper.interval
    print(f"recovery after SIGKILL: {recovery:.3f}s (bound {bound:.2f}s)")
    assert recovery <= bound + 0.3  # polling and process scheduling slack


def test_sigterm_during_long_job_exits_zero_and_requeues_at_once(
    redis_url: str, tmp_path: Path, log_file: Path
) -> None:
    settings = e2e_settings(redis_url, count=2, shutdown_grace="1s")
    config = write_config(tmp_path / "config.yaml", settings)
    engine = Engine.from_settings(settings)
    (job_id,) = enqueue(engine, 1, sleep_ms=30_000)
    worker = spawn("worker", config, JQ_TEST_LOG=str(log_file))
    wait_for(lambda: stats_of(settings, engine).queues["high"].processing == 1)
    started = time.monotonic()
    code = stop_process(worker, signal.SIGTERM)
    elapsed = time.monotonic() - started
    assert code == 0
    assert elapsed <= settings.worker.shutdown_grace + 1
    (raw,) = engine.client.lrange(engine.keys.queue("high").pending, 0, -1)
    job = json.loads(raw)
    assert job["id"] == job_id and job["retries"] == 0, "released without counting an attempt"
    assert stats_of(settings, engine).registered == 0


@pytest.fixture
def restartable_redis() -> Iterator[RedisServer]:
    server = RedisServer(persistent=True).start()
    yield server
    server.cleanup()


def test_redis_restart_mid_run_workers_reconnect_and_finish(
    restartable_redis: RedisServer, tmp_path: Path, log_file: Path
) -> None:
    settings = e2e_settings(restartable_redis.url, heartbeat_ttl="10s", claim_timeout="500ms")
    config = write_config(tmp_path / "config.yaml", settings)
    engine = Engine.from_settings(settings)
    ids = enqueue(engine, 400, sleep_ms=5)
    workers = [spawn("worker", config, JQ_TEST_LOG=str(log_file)) for _ in range(2)]
    try:
        wait_for(lambda: sum(executions(log_file).values()) >= 100)
        restartable_redis.restart()
        wait_for(lambda: settled(settings, engine, 400), timeout=60)
        assert all(w.poll() is None for w in workers), "workers survive the restart"
    finally:
        codes = [stop_process(w) for w in workers]
    assert codes == [0, 0]
    stats = stats_of(settings, engine)
    assert (stats.completed, stats.dead_letter) == (400, 0)
    assert set(executions(log_file)) == set(ids)
