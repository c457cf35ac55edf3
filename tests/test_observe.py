"""The /metrics, /healthz, /readyz endpoint and the queue-length sampler."""

from __future__ import annotations

import gzip
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from platform import python_version

import pytest
from prometheus_client import CollectorRegistry

import jobqueue
from jobqueue.config import Settings
from jobqueue.engine import Engine
from jobqueue.errors import OperationalError
from jobqueue.job import new_job
from jobqueue.observe.metrics import BREAKER_STATES, DEPTH_STATES, Metrics
from jobqueue.observe.server import ObservabilityServer, ReadyProbe, start_server
from jobqueue.roles.sampler import QueueSampler, redis_ready, start_sampler
from tests.conftest import make_settings
from tests.helpers import DESIGN_SERIES, wait_for
from tests.redis_server import RedisServer
from tests.states import OLDEST_AGE, fill_states


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
        assert 'jobqueue_jobs_completed_total{queue="high"} 3.0' in body
        assert get(server.url + "/healthz")[:1] == (200,)
        assert get(server.url + "/nope")[0] == 404
        status, content_type, _ = get(server.url + "/metrics", "application/openmetrics-text")
        assert status == 200 and content_type.startswith("application/openmetrics-text")


def test_readyz_follows_redis_stop_and_restart(own_redis: RedisServer) -> None:
    engine = Engine.from_settings(fast_settings(own_redis.url))
    with ObservabilityServer(Metrics().registry, redis_ready(engine), "127.0.0.1") as server:
        assert get(server.url + "/readyz")[0] == 200
        own_redis.stop()
        assert wait_for(lambda: get(server.url + "/readyz")[0] == 503, timeout=30)
        assert get(server.url + "/healthz")[0] == 200  # the process still lives
        own_redis.start()
        assert wait_for(lambda: get(server.url + "/readyz")[0] == 200, timeout=30)
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
    return metrics.registry.get_sample_value("jobqueue_queue_length", {"queue": queue})


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


# -- conventions: names, collectors, breaker states, depths, HTTP ---------------------------


def test_every_series_is_prefixed_beside_process_and_python_collectors() -> None:
    names = {family.name for family in Metrics().registry.collect()}
    standard = {n for n in names if n.startswith(("process_", "python_"))}
    assert {"process_cpu_seconds", "process_resident_memory_bytes", "python_info"} <= standard
    assert all(n.startswith("jobqueue_") for n in names - standard), names - standard
    build = Metrics().registry.get_sample_value(
        "jobqueue_build_info", {"version": jobqueue.__version__, "python": python_version()}
    )
    assert build == 1.0


def test_breaker_state_is_one_series_per_state() -> None:
    metrics = Metrics()

    def states() -> dict[str, float | None]:
        get = metrics.registry.get_sample_value
        return {s: get("jobqueue_circuit_breaker_state", {"state": s}) for s in BREAKER_STATES}

    assert states() == {"closed": 0.0, "half-open": 0.0, "open": 0.0}  # declared up front
    metrics.set_breaker_state("open")
    assert states() == {"closed": 0.0, "half-open": 0.0, "open": 1.0}
    metrics.set_breaker_state("half-open")
    assert states() == {"closed": 0.0, "half-open": 1.0, "open": 0.0}


def test_sampler_publishes_depth_per_state_and_oldest_pending_age(settings: Settings) -> None:
    engine = Engine.from_settings(settings)
    expected = fill_states(engine)
    metrics = Metrics()
    QueueSampler(engine, metrics, ["high", "low"], interval=1).sample()
    get = metrics.registry.get_sample_value
    depth = {s: get("jobqueue_queue_depth", {"queue": "high", "state": s}) for s in DEPTH_STATES}
    assert depth == {state: float(n) for state, n in expected.items()}
    assert get("jobqueue_queue_length", {"queue": "high"}) == expected["pending"]
    age = get("jobqueue_queue_oldest_pending_age_seconds", {"queue": "high"})
    assert age is not None and OLDEST_AGE <= age < OLDEST_AGE + 600
    assert get("jobqueue_queue_oldest_pending_age_seconds", {"queue": "low"}) == 0.0  # empty


def request(url: str, method: str = "GET", **headers: str) -> tuple[int, dict[str, str], bytes]:
    req = urllib.request.Request(url, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=5) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, dict(exc.headers), exc.read()


def test_endpoints_answer_head_and_gzip_from_prometheus_client() -> None:
    metrics = Metrics()
    metrics.jobs_completed.labels(queue="high").inc(2)
    with ObservabilityServer(metrics.registry, lambda: False, "127.0.0.1") as server:
        status, headers, body = request(server.url + "/metrics", **{"Accept-Encoding": "gzip"})
        assert status == 200 and headers["Content-Encoding"] == "gzip"
        assert b'jobqueue_jobs_completed_total{queue="high"} 2.0' in gzip.decompress(body)
        for path, code in (("/metrics", 200), ("/healthz", 200), ("/readyz", 503), ("/x", 404)):
            get_status, _, get_body = request(server.url + path)
            head_status, head_headers, head_body = request(server.url + path, "HEAD")
            assert (get_status, head_status, head_body) == (code, code, b""), path
            if path != "/metrics":  # the metrics body changes between two scrapes
                assert int(head_headers["Content-Length"]) == len(get_body), path
        assert request(server.url + "/healthz", "POST")[0] == 405
