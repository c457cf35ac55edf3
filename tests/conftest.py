from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from jobqueue.config import Settings
from jobqueue.engine import Engine, EngineLimits
from jobqueue.engine.keys import KeySchema
from tests.redis_server import RedisServer


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


@pytest.fixture
def raw_redis(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
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


@pytest.fixture
def engine(redis_url: str) -> Iterator[Engine]:
    eng = Engine(
        redis.Redis.from_url(redis_url),
        KeySchema("jqtest"),
        EngineLimits(completed_max=100, dedupe_ttl=3600, max_payload_bytes=4096),
    )
    yield eng
    eng.close()


@pytest.fixture
def tmp_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path
