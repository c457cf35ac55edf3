"""End to end on a real three-master Redis Cluster: real worker and reaper processes whose
config names the cluster by its startup nodes, a SIGKILL mid-run, nothing lost.

The engine conformance tests (tests/test_engine.py, tests/test_conservation.py) run on the
same cluster through the ``deployment`` parameter; this module covers the processes."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from jobqueue.engine import Engine
from jobqueue.job import new_job
from tests.cluster import LocalCluster
from tests.helpers import kill_tree, settled, spawn, stats_of, stop_process, wait_for, write_config
from tests.test_e2e import e2e_settings, ran, started

pytestmark = pytest.mark.e2e

NAMESPACE = "jqtest"  # its two queues and its registry hash to three different shards


def test_queues_spread_over_shards_by_their_hash_tags(redis_cluster: LocalCluster) -> None:
    settings = e2e_settings(redis_cluster.url)
    settings.redis.namespace = NAMESPACE
    settings.redis.cluster.startup_nodes = redis_cluster.startup_nodes
    engine = Engine.from_settings(settings)
    high, low = engine.keys.queue("high"), engine.keys.queue("low")
    shard_of = redis_cluster.node_of_key
    # Every key of one queue shares one slot, so each script runs on one shard ...
    assert len({shard_of(k) for k in (high.pending, high.processing("w"), high.stats)}) == 1
    # ... and different queues (and the worker registry) live on different shards.
    shards = {shard_of(high.pending), shard_of(low.pending), shard_of(engine.keys.registry)}
    assert len(shards) == 3, shards
    engine.close()


def test_workers_and_reaper_on_a_cluster_sigkill_loses_nothing(
    redis_cluster: LocalCluster, tmp_path: Path
) -> None:
    redis_cluster.flush()
    log_file = tmp_path / "executions.log"
    settings = e2e_settings(redis_cluster.url)
    settings.redis.namespace = NAMESPACE
    settings.redis.cluster.startup_nodes = redis_cluster.startup_nodes
    config = write_config(tmp_path / "config.yaml", settings)
    engine = Engine.from_settings(settings)
    # The victim runs alone until it holds a job that waits for a gate the test opens after
    # the kill, so the kill lands mid-job however slow the machine: waiting to see it hold
    # one of the short jobs failed on a loaded machine, every job done before it was seen.
    gate = tmp_path / "gate"
    held = [(new_job(f"/data/held-{p}", p, gate=str(gate)), p) for p in ("high", "low")]
    rest = [(new_job(f"/data/{i}", p, sleep_ms=5), p) for i in range(149) for p in ("high", "low")]
    jobs = [*held, *rest]
    assert all(engine.enqueue_many(jobs))
    env = {"JQ_TEST_LOG": str(log_file)}
    victim = spawn("worker", config, **env)
    others = [spawn("reaper", config, **env)]  # and the survivor: they must stop cleanly
    try:
        wait_for(lambda: started(log_file) & {job.id for job, _ in held})
        others.append(spawn("worker", config, **env))
        wait_for(lambda: sum(ran(log_file).values()) >= 30)
        kill_tree(victim)
        gate.touch()
        wait_for(lambda: settled(settings, engine, len(jobs)), timeout=45)
    finally:
        codes = [stop_process(proc) for proc in others]
        stop_process(victim)
    assert codes == [0, 0]
    stats = stats_of(settings, engine)
    assert (stats.completed, stats.dead_letter) == (len(jobs), 0)
    assert {q: stats.queues[q].completed for q in ("high", "low")} == {"high": 150, "low": 150}
    recovered = sum(
        q.counters.get("reaped", 0) + q.counters.get("released", 0) for q in stats.queues.values()
    )
    assert recovered >= 1, "the victim's jobs were recovered"
    assert set(ran(log_file)) == {job.id for job, _ in jobs}, "every job ran"
    engine.close()


def test_worker_outlives_a_whole_cluster_outage() -> None:
    """redis-py's cluster client raises RedisClusterException (not a RedisError) when no
    node answers; every loop must survive it and work again when the cluster is back."""
    from tests.cluster import start_all
    from tests.conftest import make_settings
    from tests.helpers import running_worker

    cluster = LocalCluster().start()
    try:
        settings = make_settings(
            cluster.url,
            redis={
                "cluster": {"enabled": True},
                "max_retries": 1,
                "dial_timeout": "500ms",
                "read_timeout": "500ms",
            },
            worker={
                "count": 1,
                "heartbeat_ttl": "2s",
                "claim_timeout": "500ms",
                "handler": {"type": "noop"},
            },
        )
        with running_worker(settings) as worker:
            wait_for(lambda: worker.engine.registry.workers() != {})
            for node in cluster.nodes:
                node.stop()
            time.sleep(2)  # every loop meets the outage at least once
            assert all(child.process.is_alive() for child in worker.children)
            start_all(cluster.nodes)
            engine = Engine.from_settings(settings)
            wait_for(lambda: _enqueued(engine), timeout=20)
            wait_for(lambda: settled(settings, engine, 1), timeout=20)
    finally:
        cluster.cleanup()


def _enqueued(engine: Engine) -> bool:
    try:
        return engine.enqueue(new_job("/data/after-outage", "high"), "high")
    except Exception:  # the cluster may still be electing
        return False
