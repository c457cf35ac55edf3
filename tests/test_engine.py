"""Every engine operation against a real redis-server and against a real Redis Cluster
(three masters): the same tests, parametrized over ``deployment``."""

from __future__ import annotations

import json
import time

import pytest
import redis

from jobqueue.engine import Engine, Inspector, Lease, RetryPolicy
from jobqueue.job import Job, PayloadError, new_job
from tests.conftest import DEPLOYMENTS

pytestmark = pytest.mark.parametrize("deployment", DEPLOYMENTS, indirect=True)

W = "host:1:0:abc"
QUEUES = ("high", "low")
NO_WAIT = RetryPolicy(max_retries=2, base=0.0, cap=0.0)


@pytest.fixture
def lease(engine: Engine) -> Lease:
    """Worker W, registered with a lease on both queues."""
    return engine.registry.register(W, {"host": "h"}, QUEUES, ttl=30)


def claim(engine: Engine, queue: str, n: int, worker: str = W) -> list[bytes]:
    raws = engine.claim(queue, worker, n)
    assert raws is not None, "claim refused: no lease"
    return raws


def claim_one(engine: Engine, queue: str = "high", worker: str = W) -> Job:
    raws = claim(engine, queue, 1, worker)
    assert len(raws) == 1
    claimed = engine.decode(queue, raws[0])
    assert claimed.job is not None
    return claimed.job


def expire(raw_redis: redis.Redis, engine: Engine, worker: str = W) -> None:
    """What a stall past the TTL does: the heartbeat and every lease expire."""
    raw_redis.delete(engine.keys.heartbeat(worker))
    for queue in QUEUES:
        raw_redis.delete(engine.keys.queue(queue).lease(worker))


def test_claim_reserves_fifo_and_start_records_it(
    engine: Engine, raw_redis: redis.Redis, lease: Lease
) -> None:
    jobs = [new_job(f"/data/{i}", "high") for i in range(5)]
    for job in jobs:
        assert engine.enqueue(job, "high")
    raws = claim(engine, "high", 3)
    assert [engine.decode("high", r).job.id for r in raws] == [j.id for j in jobs[:3]]  # type: ignore[union-attr]
    q = engine.keys.queue("high")
    assert (raw_redis.llen(q.pending), raw_redis.llen(q.reserved(W))) == (2, 3)
    assert engine.start("high", W, raws[:2]) == [True, True]
    assert engine.start("high", W, raws[:1]) == [False]  # already started
    held = engine.held("high", W)
    assert (held.processing, held.reserved) == (raws[:2], raws[2:])


def test_claim_needs_a_lease_with_time_left(engine: Engine, raw_redis: redis.Redis) -> None:
    engine.enqueue(new_job("/a", "high"), "high")
    assert engine.claim("high", W, 1) is None  # never registered
    engine.registry.register(W, {}, QUEUES, ttl=0.5)
    assert engine.claim("high", W, 1, min_lease=5.0) is None  # lease too short
    assert engine.pending_length("high") == 1
    assert len(claim(engine, "high", 1)) == 1


def test_start_is_refused_once_the_lease_is_gone(
    engine: Engine, raw_redis: redis.Redis, lease: Lease
) -> None:
    engine.enqueue(new_job("/a", "high"), "high")
    raws = claim(engine, "high", 1)
    expire(raw_redis, engine)
    assert engine.start("high", W, raws) == [False]
    assert engine.held("high", W).reserved == raws


def test_wait_for_jobs_blocks_without_moving_anything(
    engine: Engine, raw_redis: redis.Redis
) -> None:
    start = time.monotonic()
    assert not engine.wait_for_jobs("high", 0.2)
    assert time.monotonic() - start >= 0.15
    jobs = [new_job(f"/{i}", "high") for i in range(3)]
    engine.enqueue_many([(job, "high") for job in jobs])
    before = raw_redis.lrange(engine.keys.queue("high").pending, 0, -1)
    assert engine.wait_for_jobs("high", 1)
    assert raw_redis.lrange(engine.keys.queue("high").pending, 0, -1) == before


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


def test_identical_payloads_never_collapse_in_the_scheduled_set(
    engine: Engine, raw_redis: redis.Redis, lease: Lease
) -> None:
    """Issue 9, item 12: a sorted set keeps one member per value, so two copies of one job
    (enqueued twice with a delay, or failing the same way) used to become one."""
    job = new_job("/twice", "high")
    assert engine.enqueue_many([(job, "high"), (job, "high")], delay=60) == [True, True]
    q = engine.keys.queue("high")
    assert raw_redis.zcard(q.scheduled) == 2
    engine.enqueue_many([(job, "high"), (job, "high")])
    raws = claim(engine, "high", 2)
    for raw in raws:
        engine.fail(engine.decode("high", raw), W, "same error", RetryPolicy(3, 60, 60))
    members = raw_redis.zrange(q.scheduled, 0, -1)
    assert len(members) == 4
    assert {json.loads(m)["id"] for m in members} == {job.id}


def test_oversized_job_is_refused_at_enqueue(engine: Engine) -> None:
    with pytest.raises(PayloadError):
        engine.enqueue(new_job("/x" * 5000, "high"), "high")


def test_ack_is_fenced_and_marks_idempotency_done(
    engine: Engine, raw_redis: redis.Redis, lease: Lease
) -> None:
    engine.enqueue(new_job("/a", "high", idempotency_key="ka"), "high")
    raw = claim(engine, "high", 1)[0]
    engine.start("high", W, [raw])
    claimed = engine.decode("high", raw)
    assert engine.done_flags("high", ["ka"]) == [False]
    assert engine.ack("high", W, [claimed]) == [True]
    assert engine.ack("high", W, [claimed]) == [False]  # second ack is fenced out
    assert engine.done_flags("high", ["ka"]) == [True]
    q = engine.keys.queue("high")
    assert raw_redis.lrange(q.completed, 0, -1) == [raw]
    assert raw_redis.hget(q.stats, "completed") == b"1"


def test_a_job_that_finished_before_its_start_was_recorded_is_acked_from_reserved(
    engine: Engine, raw_redis: redis.Redis, lease: Lease
) -> None:
    engine.enqueue_many([(new_job(f"/{i}", "high"), "high") for i in range(2)])
    fast, failing = (engine.decode("high", r) for r in claim(engine, "high", 2))
    assert engine.ack("high", W, [fast]) == [True]
    assert engine.fail(failing, W, "boom", NO_WAIT) == "retried"
    assert not engine.held("high", W)


def test_ack_arguments_are_checked_before_anything_moves(
    engine: Engine, raw_redis: redis.Redis, lease: Lease
) -> None:
    """Issue 9, item 9: with dedupe_ttl 0 the ack used to fail on SET PX 0 after its LREM,
    and the job was in no list at all. Scripts check their arguments first, and a ttl of 0
    only skips marking the key done."""
    engine.enqueue(new_job("/a", "high", idempotency_key="k"), "high")
    raw = claim(engine, "high", 1)[0]
    q = engine.keys.queue("high")
    bad_keys = [q.processing(W), q.reserved(W), q.completed, q.stats, q.idempotency("k")]
    with pytest.raises(redis.ResponseError):
        engine.scripts["ack"](keys=bad_keys, args=[10, -1, 1000, raw, 5])
    assert engine.held("high", W).reserved == [raw]
    assert engine.scripts["ack"](keys=bad_keys, args=[10, 0, 1000, raw, 5]) == [1]
    assert raw_redis.lrange(q.completed, 0, -1) == [raw]


def test_completed_list_is_capped(engine: Engine, raw_redis: redis.Redis, lease: Lease) -> None:
    engine.enqueue_many([(new_job(f"/{i}", "low"), "low") for i in range(150)])
    raws = claim(engine, "low", 150)
    engine.ack("low", W, [engine.decode("low", r) for r in raws])
    q = engine.keys.queue("low")
    assert raw_redis.llen(q.completed) == 100
    assert raw_redis.hget(q.stats, "completed") == b"150"


def test_fail_retries_with_backoff_then_dead_letters(
    engine: Engine, raw_redis: redis.Redis, lease: Lease
) -> None:
    engine.enqueue(new_job("/flaky", "high"), "high")
    q = engine.keys.queue("high")
    for attempt in range(1, 4):
        raw = claim(engine, "high", 1)[0]
        engine.start("high", W, [raw])
        outcome = engine.fail(engine.decode("high", raw), W, f"boom {attempt}", NO_WAIT)
        if attempt <= 2:
            assert outcome == "retried"
            assert raw_redis.zcard(q.scheduled) == 1
            assert engine.promote("high") == 1
        else:
            assert outcome == "dead"
    dead = json.loads(raw_redis.lindex(q.dead, 0))  # type: ignore[arg-type]
    assert dead["retries"] == 3 and "boom 3" in dead["last_error"]
    assert not engine.held("high", W)


def test_retry_due_time_comes_from_backoff(
    engine: Engine, raw_redis: redis.Redis, lease: Lease
) -> None:
    engine.enqueue(new_job("/slow", "high"), "high")
    raw = claim(engine, "high", 1)[0]
    server_ms = int(raw_redis.time()[0]) * 1000
    engine.fail(engine.decode("high", raw), W, "x", RetryPolicy(5, base=60.0, cap=60.0))
    ((_, due),) = raw_redis.zrange(engine.keys.queue("high").scheduled, 0, -1, withscores=True)
    assert server_ms - 1000 <= due <= server_ms + 61_000


def test_fail_after_reap_is_fenced(engine: Engine, raw_redis: redis.Redis, lease: Lease) -> None:
    engine.enqueue(new_job("/a", "high"), "high")
    raw = claim(engine, "high", 1)[0]
    engine.start("high", W, [raw])
    expire(raw_redis, engine)
    engine.reap(W, ["high"], NO_WAIT)
    assert engine.fail(engine.decode("high", raw), W, "late", NO_WAIT) == "fenced"
    assert engine.ack("high", W, [engine.decode("high", raw)]) == [False]


@pytest.mark.parametrize(
    "payload",
    [b"not json", b'{"id": 1, "filepath": "/a", "priority": "high"}', b"\xff\xfe", b"[]"],
)
def test_malformed_payload_is_buried_with_raw_bytes(
    engine: Engine, raw_redis: redis.Redis, payload: bytes, lease: Lease
) -> None:
    q = engine.keys.queue("high")
    raw_redis.lpush(q.pending, payload)
    claimed = engine.decode("high", claim(engine, "high", 1)[0])
    assert claimed.job is None and claimed.error
    assert engine.bury(claimed, W, claimed.error) == "dead"
    entry = json.loads(raw_redis.lindex(q.dead, 0))  # type: ignore[arg-type]
    assert entry["dead_reason"] == "malformed"
    assert entry["raw_encoding"] in {"utf-8", "base64"}


def test_oversized_payload_at_claim_is_reported(
    engine: Engine, raw_redis: redis.Redis, lease: Lease
) -> None:
    big = new_job("/" + "x" * 5000, "high").to_json()
    raw_redis.lpush(engine.keys.queue("high").pending, big)
    claimed = engine.decode("high", claim(engine, "high", 1)[0])
    assert claimed.job is None and "max_payload_bytes" in claimed.error


def test_release_returns_jobs_to_the_head_in_order_without_an_attempt(
    engine: Engine, lease: Lease
) -> None:
    jobs = [new_job(f"/{i}", "low") for i in range(4)]
    engine.enqueue_many([(job, "low") for job in jobs])
    raws = claim(engine, "low", 3)
    engine.start("low", W, raws[2:])
    assert engine.release("low", W, raws[2:], started=True) == 1
    assert engine.release("low", W, raws[:2]) == 2  # released last: claimed first
    again = [engine.decode("low", r).job for r in claim(engine, "low", 4)]
    assert [j.id for j in again if j] == [job.id for job in jobs]
    assert all(j and j.retries == 0 for j in again)


def test_reap_waits_for_the_lease_charges_started_jobs_only(
    engine: Engine, raw_redis: redis.Redis, lease: Lease
) -> None:
    """Issue 9, item 3: every job of a dead worker's list used to be charged an attempt,
    even the ones it had only prefetched; with max_retries 0 they went straight to the DLQ."""
    jobs = [new_job(f"/{i}", "high") for i in range(4)]
    engine.enqueue_many([(job, "high") for job in jobs])
    raws = claim(engine, "high", 4)
    engine.start("high", W, raws[:1])
    none_left = RetryPolicy(max_retries=0, base=0, cap=0)
    refused = engine.reap(W, ["high"], none_left)
    assert not refused.complete and engine.held("high", W)  # the lease is alive
    expire(raw_redis, engine)
    result = engine.reap(W, ["high"], none_left)
    assert result.complete
    assert (result.dead, result.requeued, result.released) == (1, 0, 3)
    assert result.jobs == [("high", jobs[0].id)]
    left = [
        engine.decode("high", r).job
        for r in raw_redis.lrange(engine.keys.queue("high").pending, 0, -1)
    ]
    assert sorted(j.id for j in left if j and j.retries == 0) == sorted(j.id for j in jobs[1:])


def test_reap_then_requeue_with_a_crash_counted(
    engine: Engine, raw_redis: redis.Redis, lease: Lease
) -> None:
    engine.enqueue(new_job("/c", "high"), "high")
    engine.start("high", W, claim(engine, "high", 1))
    expire(raw_redis, engine)
    result = engine.reap(W, ["high"], NO_WAIT)
    assert (result.requeued, result.dead) == (1, 0)
    engine.registry.register("other", {}, QUEUES, ttl=30)
    job = claim_one(engine, "high", "other")
    assert (job.crashes, job.retries) == (1, 0), "a crash, not a retry of its own"


def test_racing_reapers_each_count_only_what_they_moved(
    engine: Engine, raw_redis: redis.Redis, lease: Lease
) -> None:
    """Issue 9, item 12: a reaper counted every job it had read, moved or not, so two
    reapers together reported (and ledgered) each recovery twice."""
    engine.enqueue_many([(new_job(f"/{i}", "high"), "high") for i in range(5)])
    engine.start("high", W, claim(engine, "high", 5))
    expire(raw_redis, engine)
    stale = engine.held("high", W).processing  # what a second reaper read a moment ago
    first = engine.reap(W, ["high"], NO_WAIT)
    q = engine.keys.queue("high")
    args = [1000, *(part for raw in stale for part in (raw, raw, "p"))]
    keys = [q.processing(W), q.reserved(W), q.lease(W), q.pending, q.dead, q.stats]
    reply = engine.scripts["reap"](keys=keys, args=args)
    assert len(first.jobs) == 5 and reply[2:] == [0] * 5


def test_reap_reports_entries_it_was_not_given(
    engine: Engine, raw_redis: redis.Redis, lease: Lease
) -> None:
    engine.enqueue_many([(new_job(f"/{i}", "high"), "high") for i in range(2)])
    engine.start("high", W, claim(engine, "high", 2))
    expire(raw_redis, engine)
    q = engine.keys.queue("high")
    keys = [q.processing(W), q.reserved(W), q.lease(W), q.pending, q.dead, q.stats]
    assert engine.scripts["reap"](keys=keys, args=[1000])[0] == 2  # read again, then reap
    assert engine.reap(W, ["high"], NO_WAIT).complete


def test_a_worker_back_from_a_stall_cannot_orphan_a_job(
    engine: Engine, raw_redis: redis.Redis, lease: Lease
) -> None:
    """Issue 9, item 6: the reaper read a dead worker's lists, reaped, then deregistered it;
    a worker resuming from a stall could claim in between and die, leaving a job in the list
    of a worker nobody looked at any more. Now its claim needs the lease the reaper waited to
    see gone, and the entry goes only under the token the reaper saw."""
    engine.enqueue_many([(new_job(f"/{i}", "high"), "high") for i in range(2)])
    expire(raw_redis, engine)
    (dead,) = engine.registry.expired().items()
    engine.reap(W, QUEUES, NO_WAIT)
    assert engine.claim("high", W, 1) is None  # resumed from its stall: refused
    assert engine.registry.deregister(W, dead[1]["lease"], by_owner=False)
    assert engine.pending_length("high") == 2 and not engine.held("high", W)
    # or it registered again first: the reaper must leave it, and its new lists, alone
    again = engine.registry.register(W, {}, QUEUES, ttl=30)
    raws = claim(engine, "high", 1)
    assert not engine.registry.deregister(W, dead[1]["lease"], by_owner=False)
    assert engine.registry.workers()[W]["lease"] == again.token
    assert engine.held("high", W).reserved == raws


def test_requeue_dead_resets_attempts_and_skips_raw_entries(
    engine: Engine, raw_redis: redis.Redis, lease: Lease
) -> None:
    q = engine.keys.queue("high")
    engine.enqueue(new_job("/a", "high"), "high")
    raw = claim(engine, "high", 1)[0]
    engine.fail(engine.decode("high", raw), W, "x", RetryPolicy(0, 0, 0))
    raw_redis.lpush(q.pending, b"garbage")
    garbage = engine.decode("high", claim(engine, "high", 1)[0])
    engine.bury(garbage, W, garbage.error)
    assert engine.requeue_dead("high", None) == (1, 1)
    job = claim_one(engine, "high")
    assert job.retries == 0 and job.last_error == ""
    assert raw_redis.llen(q.dead) == 1


def test_requeue_dead_moves_only_what_was_dead_when_it_started(
    engine: Engine, raw_redis: redis.Redis, lease: Lease, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 9, item 11: with workers running, a requeued job that died again was picked up
    by the same ``requeue-dlq --all`` and sent back again (1,029-1,136 moves for 1,000)."""
    q = engine.keys.queue("high")
    engine.enqueue_many([(new_job(f"/{i}", "high"), "high") for i in range(7)])
    for raw in claim(engine, "high", 7):
        engine.fail(engine.decode("high", raw), W, "x", RetryPolicy(0, 0, 0))
    monkeypatch.setattr("jobqueue.engine.queue.DEAD_PAGE", 2)
    script = engine.scripts["requeue_dead"]

    class DiesAgain:  # every job sent back dies again at once, as a busy worker would do it
        def __call__(self, keys: list[str], args: list[bytes]) -> int:
            moved = script(keys=keys, args=args)
            for raw in claim(engine, "high", 10):
                engine.fail(engine.decode("high", raw), W, "again", RetryPolicy(0, 0, 0))
            return int(moved)

    monkeypatch.setitem(engine.scripts._scripts, "requeue_dead", DiesAgain())
    assert engine.requeue_dead("high", None) == (7, 0)
    assert raw_redis.llen(q.dead) == 7
    assert all(
        json.loads(e)["last_error"].endswith("again") for e in raw_redis.lrange(q.dead, 0, -1)
    )


def test_requeue_dead_pages_past_malformed_entries(
    engine: Engine, raw_redis: redis.Redis, lease: Lease
) -> None:
    q = engine.keys.queue("high")
    raw_redis.lpush(q.pending, b"garbage-1", b"garbage-2")
    for _ in range(2):
        garbage = engine.decode("high", claim(engine, "high", 1)[0])
        engine.bury(garbage, W, garbage.error)
    engine.enqueue_many([(new_job(f"/{i}", "high"), "high") for i in range(3)])
    for raw in claim(engine, "high", 3):
        engine.fail(engine.decode("high", raw), W, "x", RetryPolicy(0, 0, 0))
    assert engine.requeue_dead("high", 1) == (1, 2)  # the two malformed ones do not block
    assert engine.requeue_dead("high", None) == (2, 2)
    assert raw_redis.llen(q.dead) == 2 and engine.pending_length("high") == 3


def test_registry_renewal_registration_and_token_fenced_deregister(
    engine: Engine, raw_redis: redis.Redis
) -> None:
    first = engine.registry.register(W, {"pid": 1}, ["high"], ttl=0.2)
    assert engine.registry.renew([first], 0.2) == {W: True}
    assert engine.registry.expired() == {}
    time.sleep(0.3)
    assert engine.registry.renew([first], 0.2) == {W: False}
    assert list(engine.registry.expired()) == [W]
    second = engine.registry.register(W, {"pid": 1}, ["high"], ttl=5)  # back before the reaper
    assert second.token != first.token
    assert not engine.registry.deregister(W, first.token, by_owner=False)
    assert not engine.registry.publish(first, {"pid": 2})
    assert engine.registry.publish(second, {"pid": 2})
    assert engine.registry.workers()[W]["pid"] == 2
    assert engine.registry.deregister(W, second.token, by_owner=True)
    assert engine.registry.workers() == {}


def test_a_lapsed_queue_lease_is_granted_again_while_the_heartbeat_lives(
    engine: Engine, raw_redis: redis.Redis, lease: Lease
) -> None:
    raw_redis.delete(engine.keys.queue("low").lease(W))
    assert engine.registry.renew([lease], 30) == {W: True}
    assert raw_redis.get(engine.keys.queue("low").lease(W)) == lease.token.encode()


def test_token_bucket_spends_burst_then_asks_to_wait(engine: Engine) -> None:
    assert all(engine.take_tokens(rate=10, burst=3) == 0 for _ in range(3))
    wait = engine.take_tokens(rate=10, burst=3)
    assert 0.05 < wait <= 0.1
    time.sleep(wait)
    assert engine.take_tokens(rate=10, burst=3) == 0


def test_scripts_reload_after_script_flush(
    engine: Engine, raw_redis: redis.Redis, lease: Lease
) -> None:
    raw_redis.script_flush()
    assert engine.enqueue(new_job("/a", "low"), "low")
    assert len(claim(engine, "low", 5)) == 1
    raw_redis.script_flush()  # now the pipelined path: NOSCRIPT replies, reload, rerun those
    assert engine.enqueue_many([(new_job(f"/{q}", q), q) for q in ("high", "low")]) == [True] * 2
    assert engine.pending_length("high") == engine.pending_length("low") == 1


def test_inspector_counts_peeks_purges_and_scans_only_its_namespace(
    engine: Engine, raw_redis: redis.Redis, lease: Lease
) -> None:
    inspector = Inspector(engine)
    jobs = [new_job(f"/{i}", "high") for i in range(4)]
    engine.enqueue_many([(job, "high") for job in jobs])
    engine.enqueue(new_job("/later", "low"), "low", delay=60)
    raws = claim(engine, "high", 3)
    engine.start("high", W, raws[1:2])
    engine.fail(engine.decode("high", raws[0]), W, "x", RetryPolicy(0, 0, 0))
    stats = inspector.stats({"high": "high", "low": "low"})
    assert (stats.queues["high"].pending, stats.queues["high"].processing) == (1, 2)
    assert (stats.queues["low"].scheduled, stats.dead_letter, stats.workers) == (1, 1, 1)
    assert [e.raw for e in inspector.peek_pending("high", 5)] == [jobs[3].to_json()]
    assert len(inspector.peek_scheduled("low", 5)) == 1
    assert inspector.purge_dead(["high", "low"]) == 1
    assert inspector.peek_dead("high", 5) == []
    raw_redis.set("unrelated", b"1")
    census = inspector.census()
    assert census["by_kind"]["pending"] == 1 and census["by_kind"]["hb"] == 1
    assert census["by_kind"]["lease"] == 2 and census["by_kind"]["reserved"] == 1
    found = {key.decode() for key in inspector.scan()}
    assert engine.keys.registry in found and "unrelated" not in found
    assert inspector.purge_all() == len(found)
    assert list(inspector.scan()) == [] and raw_redis.get("unrelated") == b"1"


def test_one_enqueue_call_pushes_a_long_page_in_order_and_dedupes_ids_within_it(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """enqueue.lua pushes in LPUSHes of 1,000: 9,000 jobs in one script call (more than
    Lua's C stack takes as arguments at once) land in order, and a job id seen earlier in
    the same call is refused."""
    monkeypatch.setattr("jobqueue.engine.queue.ENQUEUE_PAGE", 10_000)
    jobs = [new_job(f"/p{i}", "low") for i in range(9_000)]
    again = jobs[4_321].model_copy(update={"filepath": "/again"})
    items = [(job.to_json(), "", "low") for job in [*jobs[:5_000], again, *jobs[5_000:]]]
    flags = engine.enqueue_serialized(items, dedupe_id=True)
    assert flags == [True] * 5_000 + [False] + [True] * 4_000
    pending = engine.client.lrange(engine.keys.queue("low").pending, 0, -1)
    assert [json.loads(raw)["id"] for raw in reversed(pending)] == [job.id for job in jobs]
    assert engine.record(jobs[-1].id, ["low"]).state == "pending"  # type: ignore[union-attr]
