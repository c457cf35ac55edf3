"""redis.wait_replicas: enqueue and ack wait for replicas (Redis WAIT), on a real primary and
replica pair and on a real Cluster with a replica per shard; an enqueue no replica confirmed
is an error, never a success."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator

import pytest

from jobqueue.engine import Engine, NotReplicated
from jobqueue.job import new_job
from tests.cluster import LocalCluster
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


def test_on_a_cluster_each_shard_waits_for_its_own_replica() -> None:
    """A batch over two shards: WAIT goes to each primary on the connection that carried its
    writes; a shard whose replica is stopped makes the enqueue NotReplicated."""
    cluster = LocalCluster(3, replicas=True).start()
    try:
        settings = make_settings(
            cluster.url,
            redis={
                "wait_replicas": 1,
                "wait_timeout": "300ms",
                "cluster": {"enabled": True, "startup_nodes": cluster.startup_nodes},
                "namespace": "jqtest",  # spreads high and low over two shards
            },
        )
        engine = Engine.from_settings(settings)
        queues = {p: settings.worker.queue_of(p) for p in ("high", "low")}
        shards = {cluster.node_of_key(engine.keys.queue(q).pending) for q in queues.values()}
        assert len(shards) == 2
        jobs = [(new_job(f"/{i}", p), q) for i in range(3) for p, q in queues.items()]
        assert engine.enqueue_many(jobs) == [True] * len(jobs)
        for queue in queues.values():
            pending = engine.keys.queue(queue).pending
            with cluster.replicas[cluster.node_of_key(pending)].client() as client:
                client.execute_command("READONLY")  # a replica serves reads only when asked
                assert client.llen(pending) == 3, f"{queue}'s replica had its jobs at return"
        stopped = cluster.replicas[cluster.node_of_key(engine.keys.queue(queues["low"]).pending)]
        assert stopped.process is not None
        os.kill(stopped.process.pid, signal.SIGSTOP)
        try:
            with pytest.raises(NotReplicated, match="0 of 1 replicas"):
                engine.enqueue_many(jobs)
            assert engine.enqueue(new_job("/other-shard", "high"), queues["high"])
        finally:
            os.kill(stopped.process.pid, signal.SIGCONT)
        engine.close()
    finally:
        cluster.cleanup()
