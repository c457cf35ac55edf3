"""A worker and a reaper over Sentinel (a primary, one replica, one sentinel) survive the
primary's death mid-run: the sentinel promotes the replica, the processes follow it, and the
run finishes with every job completed.

What Redis' asynchronous replication can lose, and what the queue then does
---------------------------------------------------------------------------
The primary acknowledges a write before its replica has it. When the primary dies, the
writes of its last moments (typically well under a millisecond on a LAN, more under load or
a slow link) may be missing on the promoted replica. Every state change is one Lua script,
replicated as one atomic unit, and the replication stream is ordered, so the new primary
holds a consistent *earlier* state: each job in exactly one place, never half-moved. What
that means per lost write:

* a lost **enqueue**: the job never existed on the new primary although the producer was told
  "enqueued". Nothing in Redis can recover it; the producer must enqueue it again (a producer
  that re-walks its directory with idempotency keys does exactly that, safely).
* a lost **claim**: the job is back in its pending list; the worker that ran it gets a fenced
  (refused) ack and another claim runs it again: a re-execution.
* a lost **ack** (or retry, bury): the job is back in the worker's processing list. The worker
  saw the connection drop and adopts its processing list, so the job runs again and is acked
  once: a re-execution, never a loss, never a second entry in completed. (The worker adopts
  when an engine call fails; here the outage, about 2 s, outlasts redis-py's quick internal
  retries, so every busy slot sees it fail. A drop that those retries hide entirely would
  leave such a job in a live worker's processing list until that worker restarts or dies
  and is reaped: late, but not lost.)
* a lost **reap / heartbeat renewal**: the reaper reaps again, or a live worker re-registers.

So after a failover the guarantee is at-least-once for every job whose *enqueue* survived:
it ends in completed exactly once (or is still in flight), and handlers may run twice. This
test makes the enqueues durable before the failover with ``WAIT 1`` (the test is the
producer; a production producer that must not lose enqueues can do the same, or re-run), so
what it asserts is deterministic: every job completed exactly once, none dead, none in two
places, every job executed at least once. ``min-replicas-to-write`` would not make it so: it
refuses writes only while no replica has acknowledged within ``min-replicas-max-lag``
seconds, which bounds the window of loss but does not make any write synchronous.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from jobqueue.config import SentinelConfig
from jobqueue.engine import Engine
from jobqueue.job import new_job
from tests.cluster import SentinelTrio
from tests.helpers import settled, spawn, stats_of, stop_process, wait_for, write_config
from tests.test_e2e import e2e_settings, ran

pytestmark = pytest.mark.e2e

JOBS = 300


@pytest.fixture
def trio() -> Iterator[SentinelTrio]:
    deployment = SentinelTrio().start()
    yield deployment
    deployment.cleanup()


def logged(folder: Path, pattern: str, event: str) -> bool:
    return any(event in path.read_text() for path in folder.glob(pattern))


def places(engine: Engine) -> Counter[str]:
    """How many times each job id appears across every list and set of the high queue,
    including the processing list of any worker, registered or not (found by SCAN)."""
    q = engine.keys.queue("high")
    client = engine.client
    payloads = client.lrange(q.pending, 0, -1) + client.zrange(q.scheduled, 0, -1)
    payloads += client.lrange(q.completed, 0, -1) + client.lrange(q.dead, 0, -1)
    for key in client.scan_iter(match=q.processing("*")):
        payloads += client.lrange(key, 0, -1)
    return Counter(json.loads(p)["id"] for p in payloads)


def test_worker_follows_a_sentinel_failover_and_every_job_completes(
    trio: SentinelTrio, tmp_path: Path
) -> None:
    settings = e2e_settings("redis://sentinel-decides", heartbeat_ttl="10s", claim_timeout="500ms")
    settings.redis.sentinel = SentinelConfig(master_name=trio.name, addrs=trio.sentinel_addrs)
    config = write_config(tmp_path / "config.yaml", settings)
    engine = Engine.from_settings(settings)
    jobs = [new_job(f"/data/{i}", "high", sleep_ms=10) for i in range(JOBS)]
    assert all(engine.enqueue_many([(job, "high") for job in jobs]))
    with trio.primary.client() as primary:  # replication is ordered: once the replica has
        primary.set("test:fence", 1)  # this write, it has every enqueue before it
        assert primary.wait(1, 5000) == 1

    log_file = tmp_path / "executions.log"
    env = {"JQ_TEST_LOG": str(log_file)}
    worker = spawn("worker", config, **env)
    reaper = spawn("reaper", config, **env, JOBQUEUE_OBSERVABILITY__LOG_LEVEL="info")
    try:
        wait_for(lambda: logged(tmp_path, "reaper-*.log", "reaper started"))  # past its PING
        wait_for(lambda: sum(ran(log_file).values()) >= JOBS // 5)
        failover_seconds = trio.kill_primary_and_wait_failover()
        done_before = sum(ran(log_file).values())
        assert done_before < JOBS, "the failover must happen mid-run"
        wait_for(lambda: settled(settings, engine, JOBS), timeout=45)
        assert worker.poll() is None and reaper.poll() is None, "both followed the failover"
    finally:
        codes = [stop_process(worker), stop_process(reaper)]
    assert codes == [0, 0]

    stats = stats_of(settings, engine)
    assert (stats.completed, stats.dead_letter) == (JOBS, 0)
    found = places(engine)
    assert found == Counter({job.id: 1 for job in jobs}), "each job completed exactly once"
    runs = ran(log_file)
    assert set(runs) == {job.id for job in jobs}, "every job ran at least once"
    reruns = sum(n - 1 for n in runs.values())
    print(f"failover took {failover_seconds:.2f}s; {reruns} re-executions")
    engine.close()
