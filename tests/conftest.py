from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from redis.cluster import RedisCluster

from jobqueue.config import Settings
from jobqueue.engine import Engine, EngineLimits
from jobqueue.engine.keys import KeySchema
from tests.cluster import LocalCluster
from tests.redis_server import RedisServer

DEPLOYMENTS = ["single", "cluster"]


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """One real redis-server for the session; each test gets it flushed."""
    server = RedisServer().start()
    yield server
    server.cleanup()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> Iterator[str]:
    with redis_server.client() as client:
        client.flushall()
    yield redis_server.url


@pytest.fixture(scope="session")
def redis_cluster() -> Iterator[LocalCluster]:
    """A real three-master Redis Cluster, started on first use and kept for the session."""
    cluster = LocalCluster(3).start()
    yield cluster
    cluster.cleanup()


@pytest.fixture
def deployment(request: pytest.FixtureRequest) -> str:
    """Which Redis the ``engine`` and ``raw_redis`` fixtures use: "single" unless a module
    parametrizes it, e.g. ``pytest.mark.parametrize("deployment", DEPLOYMENTS, indirect=True)``.
    """
    return str(getattr(request, "param", "single"))


@pytest.fixture
def deployment_url(deployment: str, request: pytest.FixtureRequest) -> str:
    """The emptied Redis of ``deployment`` (a Cluster is started only when a test asks)."""
    if deployment == "cluster":
        cluster: LocalCluster = request.getfixturevalue("redis_cluster")
        cluster.flush()
        return cluster.url
    return str(request.getfixturevalue("redis_url"))


@pytest.fixture
def raw_redis(deployment: str, deployment_url: str) -> Iterator[Any]:
    """A plain client of the test's Redis, for looking behind the engine (a Cluster client on
    a Cluster, so it follows every key to its shard)."""
    client: Any = (
        RedisCluster.from_url(deployment_url)
        if deployment == "cluster"
        else redis.Redis.from_url(deployment_url)
    )
    yield client
    client.close()


def make_settings(redis_url: str, **sections: dict[str, object]) -> Settings:
    """Settings for tests: the throwaway Redis, metrics off, quiet logs, overrides merged."""
    base: dict[str, dict[str, object]] = {
        "redis": {"url": redis_url},
        "observability": {"metrics_port": 0, "log_level": "warning", "log_format": "json"},
    }
    for name, values in sections.items():
        base.setdefault(name, {}).update(values)
    return Settings(**base)  # type: ignore[arg-type]


@pytest.fixture
def settings(redis_url: str) -> Settings:
    return make_settings(redis_url)


def engine_for(deployment: str, url: str, namespace: str, limits: EngineLimits) -> Engine:
    """An Engine on ``deployment``; on a Cluster it is built from Settings with
    ``redis.cluster.enabled``, exactly as the roles build theirs."""
    if deployment == "cluster":
        return Engine.from_settings(
            make_settings(
                url,
                redis={"cluster": {"enabled": True}, "namespace": namespace},
                worker={
                    "completed_max": limits.completed_max,
                    "max_payload_bytes": limits.max_payload_bytes,
                },
                producer={"dedupe_ttl": limits.dedupe_ttl},
            )
        )
    return Engine(redis.Redis.from_url(url), KeySchema(namespace), limits)


@pytest.fixture
def engine(deployment: str, deployment_url: str) -> Iterator[Engine]:
    limits = EngineLimits(completed_max=100, dedupe_ttl=3600, max_payload_bytes=4096)
    eng = engine_for(deployment, deployment_url, "jqtest", limits)
    yield eng
    eng.close()


@pytest.fixture
def tmp_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture(autouse=True)
def _kill_spawned() -> Iterator[None]:
    """Whatever a test spawned is gone when it ends, process groups and all."""
    from tests.helpers import SPAWNED, kill_tree

    yield
    while SPAWNED:
        kill_tree(SPAWNED.pop())


@pytest.fixture(autouse=True)
def _close_engines(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Close every Engine a test builds with ``Engine.from_settings`` (tests build them
    freely; their sockets must not be left for the garbage collector to warn about)."""
    built: list[Engine] = []
    original = Engine.from_settings.__func__  # type: ignore[attr-defined]

    def tracking(cls: type[Engine], settings: Settings) -> Engine:
        engine: Engine = original(cls, settings)
        built.append(engine)
        return engine

    monkeypatch.setattr(Engine, "from_settings", classmethod(tracking))
    yield
    for engine in built:
        engine.close()
