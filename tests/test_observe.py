"""The /metrics, /healthz, /readyz endpoint and the queue-length sampler."""

from __future__ import annotations

import threading
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest
from prometheus_client import CollectorRegistry

from jobqueue.config import Settings
from jobqueue.engine import Engine
from jobqueue.errors import OperationalError
from jobqueue.job import new_job
from jobqueue.observe.metrics import Metrics
from jobqueue.observe.server import ObservabilityServer, ReadyProbe, start_server
from jobqueue.roles.sampler import QueueSampler, redis_ready, start_sampler
from tests.conftest import make_settings
from tests.helpers import DESIGN_SERIES, wait_for
from tests.redis_server import RedisServer


def get(url: str, accept: str = "") -> tuple[int, str, str]:
    request = urllib.request.Request(url, headers={"Accept": accept} if accept else {})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, response.headers["Content-Type"], response.read().decode()
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, exc.headers["Content-Type"], exc.read().decode()


@pytest.fixture
def own_redis() -> Iterator[RedisServer]:
    """A redis-server this test may stop and start."""
    server = RedisServer().start()
    yield server
    server.cleanup()


def fast_settings(url: str) -> Settings:
    return make_settings(
        url,
        redis={"dial_timeout": 0.3, "read_timeout": 0.3, "max_retries": 0},
        observability={"queue_sample_interval": 0.02},
    )


# -- server -------------------------------------------------------------------------------


def test_metrics_healthz_and_404() -> None:
    metrics = Metrics()
    metrics.jobs_completed.labels(queue="high").inc(3)
    with ObservabilityServer(metrics.registry, lambda: True, "127.0.0.1") as server:
        assert server.port > 0
        status, content_type, body = get(server.url + "/metrics")
        assert status == 200 and content_type.startswith("text/plain")
        for name in DESIGN_SERIES:
            assert f"# TYPE {name.removesuffix('_total')}" in body, name
        assert 'jobs_completed_total{queue="high"} 3.0' in body
        assert get(server.url + "/healthz")[:1] == (200,)
        assert get(server.url + "/nope")[0] == 404
        status, content_type, _ = get(server.url + "/metrics", "application/openmetrics-text")
        assert status == 200 and content_type.startswith("application/openmetrics-text")


def test_readyz_follows_redis_stop_and_restart(own_redis: RedisServer) -> None:
    engine = Engine.from_settings(fast_settings(own_redis.url))
    with ObservabilityServer(Metrics().registry, redis_ready(engine), "127.0.0.1") as server:
        assert get(server.url + "/readyz")[0] == 200
        own_redis.stop()
        assert wait_for(lambda: get(server.url + "/readyz")[0] == 503, timeout=10)
        assert get(server.url + "/healthz")[0] == 200  # the process still lives
        own_redis.start()
        assert wait_for(lambda: get(server.url + "/readyz")[0] == 200, timeout=10)
    engine.close()


def test_readyz_is_503_when_the_check_raises_or_hangs() -> None:
    def broken() -> bool:
        raise RuntimeError("boom")

    release = threading.Event()
    calls: list[int] = []

    def hung() -> bool:
        calls.append(1)
        release.wait(10)
        return True

    with ObservabilityServer(CollectorRegistry(), broken, "127.0.0.1") as server:
        assert get(server.url + "/readyz")[0] == 503
    with ObservabilityServer(CollectorRegistry(), hung, "127.0.0.1", ready_timeout=0.05) as server:
        assert get(server.url + "/readyz")[0] == 503
        assert get(server.url + "/readyz")[0] == 503
        assert len(calls) == 1  # the hung check is shared, not repeated
        release.set()
        assert wait_for(lambda: get(server.url + "/readyz")[0] == 200)


def test_ready_probe_runs_a_fresh_check_once_the_last_is_done() -> None:
    answers = iter([False, True])
    probe = ReadyProbe(lambda: next(answers), timeout=1)
    assert probe() is False
    assert probe() is True


def test_port_zero_in_config_means_off_and_busy_port_is_one_line() -> None:
    assert start_server(CollectorRegistry(), lambda: True, "127.0.0.1", 0) is None
    with ObservabilityServer(CollectorRegistry(), lambda: True, "127.0.0.1") as first:
        port = first.port
        with pytest.raises(OperationalError, match="metrics_port"):
            start_server(CollectorRegistry(), lambda: True, "127.0.0.1", port)
    server = start_server(CollectorRegistry(), lambda: True, "127.0.0.1", port)
    assert server is not None and get(server.url + "/healthz")[0] == 200
    server.stop()


# -- sampler ------------------------------------------------------------------------------


def queue_length(metrics: Metrics, queue: str) -> float | None:
    return metrics.registry.get_sample_value("queue_length", {"queue": queue})


def test_sampler_publishes_pending_lengths(settings: Settings) -> None:
    engine = Engine.from_settings(settings)
    metrics = Metrics()
    engine.enqueue(new_job("/a", "high"), "high")
    sampler = QueueSampler(engine, metrics, ["high", "low", "high"], interval=0.02)
    assert sampler.sample() == {"high": 1, "low": 0}
    assert queue_length(metrics, "high") == 1.0 and queue_length(metrics, "low") == 0.0
    with sampler:
        engine.enqueue(new_job("/b", "low"), "low")
        assert wait_for(lambda: queue_length(metrics, "low") == 1.0)
    engine.close()


def test_sampler_survives_redis_outage(own_redis: RedisServer) -> None:
    settings = fast_settings(own_redis.url)
    engine = Engine.from_settings(settings)
    metrics = Metrics()
    sampler = start_sampler(settings, engine, metrics)
    assert sampler is not None
    try:
        assert wait_for(lambda: queue_length(metrics, "high") == 0.0)
        own_redis.stop()
        assert wait_for(lambda: sampler._failing)
        own_redis.start()
        engine.enqueue(new_job("/a", "high"), "high")
        assert wait_for(lambda: queue_length(metrics, "high") == 1.0)
        assert sampler._thread is not None and sampler._thread.is_alive()
    finally:
        sampler.close()
        engine.close()


def test_sampler_off_when_interval_is_zero(settings: Settings) -> None:
    off = settings.model_copy(deep=True)
    off.observability.queue_sample_interval = 0
    engine = Engine.from_settings(off)
    assert start_sampler(off, engine, Metrics()) is None
    with pytest.raises(ValueError, match="interval"):
        QueueSampler(engine, Metrics(), ["high"], 0)
    engine.close()


def test_redis_ready_reflects_ping(settings: Settings, own_redis: RedisServer) -> None:
    engine = Engine.from_settings(fast_settings(own_redis.url))
    ready = redis_ready(engine)
    assert ready() is True
    own_redis.stop()
    assert ready() is False
    engine.close()
