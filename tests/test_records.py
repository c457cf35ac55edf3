"""Job records: a job looked up by id through every state its transitions give it, on a
single Redis and on a Cluster. The records are written by the transition scripts themselves,
so every test drives the engine as the roles do and then asks ``Engine.record``."""

from __future__ import annotations

import pytest
import redis

from jobqueue.engine import Engine, JobRecord, RetryPolicy
from jobqueue.job import new_job
from tests.conftest import DEPLOYMENTS
from tests.test_engine import NO_WAIT, QUEUES, W, claim, expire, lease  # noqa: F401 - fixture

pytestmark = [
    pytest.mark.parametrize("deployment", DEPLOYMENTS, indirect=True),
    pytest.mark.usefixtures("lease"),  # worker W, registered
]


def record(engine: Engine, job_id: str) -> JobRecord:
    found = engine.record(job_id, QUEUES)
    assert found is not None, f"no record of {job_id}"
    return found


def test_a_job_is_pending_then_processing_then_completed_and_expires(
    engine: Engine, raw_redis: redis.Redis
) -> None:
    job = new_job("/a", "low")
    engine.enqueue(job, "low")
    first = record(engine, job.id)
    assert (first.queue, first.state, first.attempts) == ("low", "pending", 0)
    assert first.enqueued_at is not None and first.started_at is None
    raws = claim(engine, "low", 1)
    assert record(engine, job.id).state == "pending", "claimed but not started"
    engine.start("low", W, raws)
    running = record(engine, job.id)
    assert (running.state, running.worker, running.attempts) == ("processing", W, 1)
    assert running.started_at is not None and running.started_at >= first.enqueued_at
    assert engine.ack("low", W, [engine.decode("low", raws[0])]) == [True]
    done = record(engine, job.id)
    assert done.state == "completed" and done.finished_at is not None
    ttl = raw_redis.pttl(engine.keys.queue("low").job(job.id))
    assert 0 < ttl <= engine.limits.completed_ttl * 1000, "a finished record expires"
    assert engine.record("no-such-id", QUEUES) is None


def test_a_job_acked_before_its_start_was_recorded_still_counts_its_run(engine: Engine) -> None:
    job = new_job("/fast", "high")
    engine.enqueue(job, "high")
    raws = claim(engine, "high", 1)
    engine.ack("high", W, [engine.decode("high", raws[0])])  # straight from reserved
    done = record(engine, job.id)
    assert (done.state, done.attempts, done.worker) == ("completed", 1, W)


def test_retry_schedules_with_due_time_and_error_then_dead_letter(engine: Engine) -> None:
    job = new_job("/f", "high")
    engine.enqueue(job, "high")
    policy = RetryPolicy(max_retries=1, base=0.0, cap=0.0)  # due at once
    raws = claim(engine, "high", 1)
    engine.start("high", W, raws)
    assert engine.fail(engine.decode("high", raws[0]), W, "boom 1", policy) == "retried"
    retried = record(engine, job.id)
    assert (retried.state, retried.last_error) == ("scheduled", "boom 1")
    assert retried.due_at is not None and retried.started_at is not None
    assert retried.due_at >= retried.started_at
    assert engine.promote("high") == 1
    assert record(engine, job.id).state == "pending"
    raws = claim(engine, "high", 1)
    engine.start("high", W, raws)
    assert engine.fail(engine.decode("high", raws[0]), W, "boom 2", policy) == "dead"
    dead = record(engine, job.id)
    assert (dead.state, dead.attempts) == ("dead", 2)
    assert "boom 2" in dead.last_error and dead.finished_at is not None


def test_a_reaped_job_is_pending_again_with_the_crash_and_requeued_dead_is_pending(
    engine: Engine, raw_redis: redis.Redis
) -> None:
    jobs = [new_job(f"/{i}", "high") for i in range(2)]
    engine.enqueue_many([(job, "high") for job in jobs])
    raws = claim(engine, "high", 2)
    engine.start("high", W, raws[:1])  # one started, one only claimed
    expire(raw_redis, engine)
    engine.reap(W, ["high"], NO_WAIT)
    started, unstarted = record(engine, jobs[0].id), record(engine, jobs[1].id)
    assert (started.state, started.attempts) == ("pending", 1)
    assert started.last_error, "why it runs again"
    assert (unstarted.state, unstarted.attempts) == ("pending", 0)
    # to the DLQ by hand (bury), then an operator's requeue
    engine.registry.register(W, {"host": "h"}, QUEUES, ttl=30)
    raws = claim(engine, "high", 2)
    for raw in raws:
        engine.bury(engine.decode("high", raw), W, "operator test")
    assert {record(engine, j.id).state for j in jobs} == {"dead"}
    assert engine.requeue_dead("high", None)[0] == 2
    for job in jobs:
        again = record(engine, job.id)
        assert (again.state, again.last_error) == ("pending", "")
        assert raw_redis.pttl(engine.keys.queue("high").job(job.id)) == -1, "kept while live"


def test_delayed_job_is_scheduled_then_pending_and_dedupe_by_id(engine: Engine) -> None:
    job = new_job("/later", "low")
    assert engine.enqueue(job, "low", delay=60)
    later = record(engine, job.id)
    assert later.state == "scheduled" and later.due_at is not None
    assert later.due_at > later.enqueued_at  # type: ignore[operator]
    assert not engine.enqueue(job, "low", dedupe_id=True), "a known id is refused when asked"
    assert engine.enqueue_many([(job, "low"), (new_job("/x", "low"), "low")], dedupe_id=True) == [
        False,
        True,
    ]


def test_records_of_completed_jobs_are_kept_only_for_the_capped_list(engine: Engine) -> None:
    """Memory stays bounded by count as well as by completed_ttl: a job that falls off the
    completed list (completed_max, 100 here) loses its record."""
    jobs = [new_job(f"/{i}", "low") for i in range(150)]
    engine.enqueue_many([(job, "low") for job in jobs])
    raws = claim(engine, "low", 150)
    engine.ack("low", W, [engine.decode("low", raw) for raw in raws])
    kept = [engine.record(job.id, QUEUES) is not None for job in jobs]
    assert kept == [False] * 50 + [True] * 100
