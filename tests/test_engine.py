"""Every engine operation against a real redis-server and against a real Redis Cluster
(three masters): the same tests, parametrized over ``deployment``."""

from __future__ import annotations

import json
import time

import pytest
import redis

from jobqueue.engine import Engine, Inspector, RetryPolicy
from jobqueue.job import Job, PayloadError, new_job
from tests.conftest import DEPLOYMENTS

pytestmark = pytest.mark.parametrize("deployment", DEPLOYMENTS, indirect=True)

W = "host:1:0:abc:0"
NO_WAIT = RetryPolicy(max_retries=2, base=0.0, cap=0.0)


def claim_one(engine: Engine, queue: str = "high", worker: str = W) -> Job:
    raws = engine.claim(queue, worker, 1)
    assert len(raws) == 1
    claimed = engine.decode(queue, raws[0])
    assert claimed.job is not None
    return claimed.job


def test_enqueue_then_claim_is_fifo_and_protected(engine: Engine, raw_redis: redis.Redis) -> None:
    jobs = [new_job(f"/data/{i}", "high") for i in range(5)]
    for job in jobs:
        assert engine.enqueue(job, "high")
    raws = engine.claim("high", W, 3)
    assert [engine.decode("high", r).job.id for r in raws] == [j.id for j in jobs[:3]]  # type: ignore[union-attr]
    q = engine.keys.queue("high")
    assert raw_redis.llen(q.pending) == 2
    assert raw_redis.llen(q.processing(W)) == 3


def test_claim_blocking_waits_then_returns_none(engine: Engine) -> None:
    start = time.monotonic()
    assert engine.claim_blocking("high", W, 0.2) is None
    assert time.monotonic() - start >= 0.15
    engine.enqueue(new_job("/a", "high"), "high")
    raw = engine.claim_blocking("high", W, 1)
    assert raw is not None and engine.held("high", W) == [raw]


def test_idempotency_key_refuses_second_enqueue(engine: Engine) -> None:
    assert engine.enqueue(new_job("/a", "low", idempotency_key="k1"), "low")
    assert not engine.enqueue(new_job("/a", "low", idempotency_key="k1"), "low")
    assert engine.pending_length("low") == 1


def test_enqueue_many_is_pipelined_and_reports_duplicates(engine: Engine) -> None:
    items = [(new_job(f"/f{i}", "low", idempotency_key=f"k{i % 3}"), "low") for i in range(6)]
    flags = engine.enqueue_many(items)
    assert flags == [True, True, True, False, False, False]
    assert engine.pending_length("low") == 3


def test_delayed_enqueue_waits_in_scheduled_until_promoted(engine: Engine) -> None:
    engine.enqueue(new_job("/later", "high"), "high", delay=0.3)
    assert engine.pending_length("high") == 0
    assert engine.promote("high") == 0
    time.sleep(0.35)
    assert engine.promote("high") == 1
    assert engine.pending_length("high") == 1


def test_oversized_job_is_refused_at_enqueue(engine: Engine) -> None:
    with pytest.raises(PayloadError):
        engine.enqueue(new_job("/x" * 5000, "high"), "high")


def test_ack_is_fenced_and_marks_idempotency_done(engine: Engine, raw_redis: redis.Redis) -> None:
    engine.enqueue(new_job("/a", "high", idempotency_key="ka"), "high")
    raw = engine.claim("high", W, 1)[0]
    claimed = engine.decode("high", raw)
    assert engine.done_flags("high", ["ka"]) == [False]
    assert engine.ack("high", W, [claimed]) == [True]
    assert engine.ack("high", W, [claimed]) == [False]  # second ack is fenced out
    assert engine.done_flags("high", ["ka"]) == [True]
    q = engine.keys.queue("high")
    assert raw_redis.lrange(q.completed, 0, -1) == [raw]
    assert raw_redis.hget(q.stats, "completed") == b"1"


def test_completed_list_is_capped(engine: Engine, raw_redis: redis.Redis) -> None:
    engine.enqueue_many([(new_job(f"/{i}", "low"), "low") for i in range(150)])
    raws = engine.claim("low", W, 150)
    engine.ack("low", W, [engine.decode("low", r) for r in raws])
    q = engine.keys.queue("low")
    assert raw_redis.llen(q.completed) == 100
    assert raw_redis.hget(q.stats, "completed") == b"150"


def test_fail_retries_with_backoff_then_dead_letters(
    engine: Engine, raw_redis: redis.Redis
) -> None:
    engine.enqueue(new_job("/flaky", "high"), "high")
    q = engine.keys.queue("high")
    for attempt in range(1, 4):
        raw = engine.claim("high", W, 1)[0]
        outcome = engine.fail(engine.decode("high", raw), W, f"boom {attempt}", NO_WAIT)
        if attempt <= 2:
            assert outcome == "retried"
            assert raw_redis.zcard(q.scheduled) == 1
            assert engine.promote("high") == 1
        else:
            assert outcome == "dead"
    dead = json.loads(raw_redis.lindex(q.dead, 0))  # type: ignore[arg-type]
    assert dead["retries"] == 3 and "boom 3" in dead["last_error"]
    assert raw_redis.llen(q.processing(W)) == 0


def test_retry_due_time_comes_from_backoff(engine: Engine, raw_redis: redis.Redis) -> None:
    engine.enqueue(new_job("/slow", "high"), "high")
    raw = engine.claim("high", W, 1)[0]
    server_ms = int(raw_redis.time()[0]) * 1000
    engine.fail(engine.decode("high", raw), W, "x", RetryPolicy(5, base=60.0, cap=60.0))
    ((_, due),) = raw_redis.zrange(engine.keys.queue("high").scheduled, 0, -1, withscores=True)
    assert server_ms - 1000 <= due <= server_ms + 61_000


def test_fail_after_reap_is_fenced(engine: Engine) -> None:
    engine.enqueue(new_job("/a", "high"), "high")
    raw = engine.claim("high", W, 1)[0]
    engine.reap(W, ["high"], NO_WAIT)
    assert engine.fail(engine.decode("high", raw), W, "late", NO_WAIT) == "fenced"
    assert engine.ack("high", W, [engine.decode("high", raw)]) == [False]


@pytest.mark.parametrize(
    "payload",
    [b"not json", b'{"id": 1, "filepath": "/a", "priority": "high"}', b"\xff\xfe", b"[]"],
)
def test_malformed_payload_is_buried_with_raw_bytes(
    engine: Engine, raw_redis: redis.Redis, payload: bytes
) -> None:
    q = engine.keys.queue("high")
    raw_redis.lpush(q.pending, payload)
    claimed = engine.decode("high", engine.claim("high", W, 1)[0])
    assert claimed.job is None and claimed.error
    assert engine.bury(claimed, W, claimed.error) == "dead"
    entry = json.loads(raw_redis.lindex(q.dead, 0))  # type: ignore[arg-type]
    assert entry["dead_reason"] == "malformed"
    assert entry["raw_encoding"] in {"utf-8", "base64"}


def test_oversized_payload_at_claim_is_reported(engine: Engine, raw_redis: redis.Redis) -> None:
    big = new_job("/" + "x" * 5000, "high").to_json()
    raw_redis.lpush(engine.keys.queue("high").pending, big)
    claimed = engine.decode("high", engine.claim("high", W, 1)[0])
    assert claimed.job is None and "max_payload_bytes" in claimed.error


def test_release_returns_jobs_to_the_head_without_an_attempt(engine: Engine) -> None:
    first, second = new_job("/1", "low"), new_job("/2", "low")
    engine.enqueue_many([(first, "low"), (second, "low")])
    raws = engine.claim("low", W, 1)
    assert engine.release("low", W, raws) == 1
    again = claim_one(engine, "low")
    assert again.id == first.id and again.retries == 0


def test_reap_requeues_with_an_attempt_and_dead_letters_when_exhausted(
    engine: Engine, raw_redis: redis.Redis
) -> None:
    engine.enqueue_many([(new_job("/a", "high"), "high"), (new_job("/b", "high"), "high")])
    engine.claim("high", W, 2)
    result = engine.reap(W, ["high"], RetryPolicy(max_retries=0, base=0, cap=0))
    assert (result.requeued, result.dead) == (0, 2)
    engine.enqueue(new_job("/c", "high"), "high")
    engine.claim("high", W, 1)
    result = engine.reap(W, ["high"], NO_WAIT)
    assert (result.requeued, result.dead) == (1, 0)
    assert claim_one(engine, "high", "other").retries == 1


def test_requeue_dead_resets_attempts_and_skips_raw_entries(
    engine: Engine, raw_redis: redis.Redis
) -> None:
    q = engine.keys.queue("high")
    engine.enqueue(new_job("/a", "high"), "high")
    raw = engine.claim("high", W, 1)[0]
    engine.fail(engine.decode("high", raw), W, "x", RetryPolicy(0, 0, 0))
    raw_redis.lpush(q.pending, b"garbage")
    garbage = engine.decode("high", engine.claim("high", W, 1)[0])
    engine.bury(garbage, W, garbage.error)
    assert engine.requeue_dead("high", None) == (1, 1)
    job = claim_one(engine, "high")
    assert job.retries == 0 and job.last_error == ""
    assert raw_redis.llen(q.dead) == 1


def test_registry_heartbeat_and_fenced_deregister(engine: Engine) -> None:
    engine.register(W, {"queues": ["high"], "pid": 1}, ttl=0.2)
    assert engine.renew([W], 0.2) == [True]
    assert engine.dead_workers() == {}
    time.sleep(0.3)
    assert engine.renew([W], 0.2) == [False]
    assert engine.dead_workers() == {W: ["high"]}
    engine.register(W, {"queues": ["high"]}, ttl=5)  # came back before the reaper acted
    assert not engine.deregister(W, by_self=False)
    assert engine.deregister(W, by_self=True)
    assert engine.registered_workers() == {}


def test_token_bucket_spends_burst_then_asks_to_wait(engine: Engine) -> None:
    assert all(engine.take_tokens(rate=10, burst=3) == 0 for _ in range(3))
    wait = engine.take_tokens(rate=10, burst=3)
    assert 0.05 < wait <= 0.1
    time.sleep(wait)
    assert engine.take_tokens(rate=10, burst=3) == 0


def test_scripts_reload_after_script_flush(engine: Engine, raw_redis: redis.Redis) -> None:
    raw_redis.script_flush()
    assert engine.enqueue(new_job("/a", "low"), "low")
    assert len(engine.claim("low", W, 5)) == 1
    raw_redis.script_flush()  # now the pipelined path: NOSCRIPT replies, reload, rerun those
    assert engine.enqueue_many([(new_job(f"/{q}", q), q) for q in ("high", "low")]) == [True] * 2
    assert engine.pending_length("high") == engine.pending_length("low") == 1


def test_inspector_counts_peeks_purges_and_scans_only_its_namespace(
    engine: Engine, raw_redis: redis.Redis
) -> None:
    inspector = Inspector(engine)
    engine.register(W, {"queues": ["high", "low"]}, ttl=30)
    jobs = [new_job(f"/{i}", "high") for i in range(3)]
    engine.enqueue_many([(job, "high") for job in jobs])
    engine.enqueue(new_job("/later", "low"), "low", delay=60)
    raws = engine.claim("high", W, 2)
    engine.fail(engine.decode("high", raws[0]), W, "x", RetryPolicy(0, 0, 0))
    stats = inspector.stats({"high": "high", "low": "low"})
    assert (stats.queues["high"].pending, stats.queues["high"].processing) == (1, 1)
    assert (stats.queues["low"].scheduled, stats.dead_letter, stats.workers) == (1, 1, 1)
    assert [e.raw for e in inspector.peek_pending("high", 5)] == [jobs[2].to_json()]
    assert len(inspector.peek_scheduled("low", 5)) == 1
    assert inspector.purge_dead(["high", "low"]) == 1
    assert inspector.peek_dead("high", 5) == []
    raw_redis.set("unrelated", b"1")
    census = inspector.census()
    assert census["by_kind"]["pending"] == 1 and census["by_kind"]["hb"] == 1
    found = {key.decode() for key in inspector.scan()}
    assert engine.keys.registry in found and "unrelated" not in found
    assert inspector.purge_all() == len(found)
    assert list(inspector.scan()) == [] and raw_redis.get("unrelated") == b"1"


def test_requeue_dead_pages_past_malformed_entries(engine: Engine, raw_redis: redis.Redis) -> None:
    q = engine.keys.queue("high")
    raw_redis.lpush(q.pending, b"garbage-1", b"garbage-2")
    for _ in range(2):
        garbage = engine.decode("high", engine.claim("high", W, 1)[0])
        engine.bury(garbage, W, garbage.error)
    engine.enqueue_many([(new_job(f"/{i}", "high"), "high") for i in range(3)])
    for raw in engine.claim("high", W, 3):
        engine.fail(engine.decode("high", raw), W, "x", RetryPolicy(0, 0, 0))
    assert engine.requeue_dead("high", 1) == (1, 2)  # the two malformed ones do not block
    assert engine.requeue_dead("high", None) == (2, 2)
    assert raw_redis.llen(q.dead) == 2 and engine.pending_length("high") == 3
