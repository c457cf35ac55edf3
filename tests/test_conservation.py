"""Conservation, property-based, on a real Redis: after every step of a random sequence of
enqueue, claim, ack, fail, release, promote, reap and requeue, each enqueued job is in exactly
one place (pending, scheduled, a processing list, completed, or dead-letter). Runs on a single
Redis and on a three-master Redis Cluster (fewer examples there: every step is a round trip
to several shards)."""

from __future__ import annotations

import json
import time
from collections import Counter

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from jobqueue.engine import EngineLimits, RetryPolicy
from jobqueue.job import new_job
from tests.conftest import engine_for

QUEUES = ("high", "low")
WORKERS = ("w1", "w2")
POLICY = RetryPolicy(max_retries=2, base=0.0, cap=0.0)
EXAMPLES = {"single": 200, "cluster": 30}


@pytest.mark.parametrize("deployment", list(EXAMPLES), indirect=True)
def test_every_job_is_in_exactly_one_place(deployment: str, deployment_url: str) -> None:
    engine = engine_for(deployment, deployment_url, "prop", EngineLimits(completed_max=1_000_000))
    client = engine.client

    class Conservation(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            client.flushall()
            self.enqueued: set[str] = set()
            self.held: dict[tuple[str, str], list[bytes]] = {}

        @rule(queue=st.sampled_from(QUEUES), delayed=st.booleans())
        def enqueue(self, queue: str, delayed: bool) -> None:
            job = new_job(f"/data/{len(self.enqueued)}", queue)
            assert engine.enqueue(job, queue, delay=0.001 if delayed else 0)
            self.enqueued.add(job.id)

        @rule(queue=st.sampled_from(QUEUES), worker=st.sampled_from(WORKERS), n=st.integers(1, 3))
        def claim(self, queue: str, worker: str, n: int) -> None:
            self.held.setdefault((queue, worker), []).extend(engine.claim(queue, worker, n))

        def _take(self, data: st.DataObject) -> tuple[str, str, bytes] | None:
            slots = [k for k, v in self.held.items() if v]
            if not slots:
                return None
            queue, worker = data.draw(st.sampled_from(slots))
            raws = self.held[(queue, worker)]
            return queue, worker, raws.pop(data.draw(st.integers(0, len(raws) - 1)))

        @rule(data=st.data())
        def ack(self, data: st.DataObject) -> None:
            taken = self._take(data)
            if taken:
                queue, worker, raw = taken
                engine.ack(queue, worker, [engine.decode(queue, raw)])

        @rule(data=st.data())
        def fail(self, data: st.DataObject) -> None:
            taken = self._take(data)
            if taken:
                queue, worker, raw = taken
                engine.fail(engine.decode(queue, raw), worker, "boom", POLICY)

        @rule(data=st.data())
        def release(self, data: st.DataObject) -> None:
            taken = self._take(data)
            if taken:
                queue, worker, raw = taken
                engine.release(queue, worker, [raw])

        @rule(queue=st.sampled_from(QUEUES))
        def promote(self, queue: str) -> None:
            # Every delayed job (due 1 ms after its enqueue) is due by now, so what promote
            # moves, and so what later draws see, never depends on timing: Hypothesis replays
            # a sequence and needs it to go the same way (else FlakyStrategyDefinition).
            time.sleep(0.002)
            engine.promote(queue)

        @rule(worker=st.sampled_from(WORKERS))
        def reap(self, worker: str) -> None:
            engine.reap(worker, QUEUES, POLICY)
            for queue in QUEUES:
                self.held.pop((queue, worker), None)  # what it held is no longer its to settle

        @rule(queue=st.sampled_from(QUEUES), n=st.integers(1, 3))
        def requeue_dead(self, queue: str, n: int) -> None:
            engine.requeue_dead(queue, n)

        @precondition(lambda self: bool(self.enqueued))
        @invariant()
        def each_job_in_exactly_one_place(self) -> None:
            places: Counter[str] = Counter()
            for queue in QUEUES:
                q = engine.keys.queue(queue)
                payloads = client.lrange(q.pending, 0, -1) + client.zrange(q.scheduled, 0, -1)
                payloads += client.lrange(q.completed, 0, -1) + client.lrange(q.dead, 0, -1)
                for worker in WORKERS:
                    payloads += client.lrange(q.processing(worker), 0, -1)
                places.update(json.loads(p)["id"] for p in payloads)
            assert set(places) == self.enqueued, "a job vanished or appeared"
            assert all(count == 1 for count in places.values()), places.most_common(3)

    run_state_machine_as_test(
        Conservation,
        settings=settings(
            max_examples=EXAMPLES[deployment],
            stateful_step_count=30,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )
    engine.close()
