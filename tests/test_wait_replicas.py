"""redis.wait_replicas: enqueue and ack wait for replicas (Redis WAIT), on a real primary and
replica pair; an enqueue no replica confirmed is an error, never a success."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator

import pytest
from pydantic import ValidationError

from jobqueue.engine import Engine, NotReplicated
from jobqueue.job import new_job
from tests.conftest import make_settings
from tests.helpers import wait_for
from tests.redis_server import RedisServer


@pytest.fixture
def pair() -> Iterator[tuple[RedisServer, RedisServer]]:
    primary = RedisServer().start()
    replica = RedisServer("--replicaof", "127.0.0.1", str(primary.port)).start()
    try:
        wait_for(lambda: replica.client().info("replication")["master_link_status"] == "up")
        yield primary, replica
    finally:
        if replica.process is not None:
            os.kill(replica.process.pid, signal.SIGCONT)
        replica.cleanup()
        primary.cleanup()


def test_an_enqueue_returns_once_a_replica_has_it_and_fails_when_none_confirms(
    pair: tuple[RedisServer, RedisServer],
) -> None:
    primary, replica = pair
    settings = make_settings(primary.url, redis={"wait_replicas": 1, "wait_timeout": "300ms"})
    engine = Engine.from_settings(settings)
    pending = engine.keys.queue("high").pending
    assert engine.enqueue_many([(new_job(f"/{i}", "high"), "high") for i in range(3)]) == [True] * 3
    with replica.client() as client:
        assert client.llen(pending) == 3, "the replica had the jobs when enqueue returned"
    assert replica.process is not None
    os.kill(replica.process.pid, signal.SIGSTOP)  # a replica that does not answer
    with pytest.raises(NotReplicated, match="0 of 1 replicas"):
        engine.enqueue(new_job("/late", "high"), "high")
    engine.registry.register("w", {}, ["high"], ttl=30)
    raws = engine.claim("high", "w", 1)
    assert raws
    acked = engine.ack("high", "w", [engine.decode("high", raws[0])])
    assert acked == [True], "an ack no replica confirmed is still an ack (at least once)"
    engine.close()


def test_without_wait_replicas_no_wait_is_sent(pair: tuple[RedisServer, RedisServer]) -> None:
    primary, replica = pair
    engine = Engine.from_settings(make_settings(primary.url))
    assert replica.process is not None
    os.kill(replica.process.pid, signal.SIGSTOP)
    assert engine.enqueue(new_job("/fast", "high"), "high")  # no replica asked: no wait
    engine.close()


def test_wait_replicas_is_refused_on_a_cluster() -> None:
    with pytest.raises(ValidationError, match="wait_replicas is not supported with cluster"):
        make_settings(
            "redis://127.0.0.1:1/0", redis={"wait_replicas": 1, "cluster": {"enabled": True}}
        )
