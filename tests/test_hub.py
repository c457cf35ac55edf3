"""The hub driven step by step in the test's thread: its cycles, and a slot's side, called by
hand against a real Redis, to pin down orderings that real threads hit only now and then."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from jobqueue.config import Settings
from jobqueue.engine import Engine
from jobqueue.job import new_job
from jobqueue.observe.logs import get_logger
from jobqueue.roles.worker.forkserver import worker_context
from jobqueue.roles.worker.hub import Hub
from jobqueue.roles.worker.process import ProcessSpec, build
from jobqueue.roles.worker.scoreboard import Scoreboard, State
from tests.test_worker import python_settings

W = "host:1:0:hub"


@pytest.fixture
def hub(redis_url: str) -> Iterator[Hub]:
    settings: Settings = python_settings(redis_url, count=1)
    context, _ = worker_context()
    queues = ("high", "low")
    board = Scoreboard(context, settings.worker.count + settings.worker.prefetch)
    ctx, built, _slots = build(ProcessSpec(settings, W, queues, board), get_logger("tests.hub"))
    sent = time.monotonic()
    lease = ctx.engine.registry.register(W, {}, queues, settings.worker.heartbeat_ttl)
    board.registered(sent, lease.token)
    yield built
    ctx.engine.close()


def test_a_job_the_supervisor_took_back_is_released_once(hub: Hub) -> None:
    """The supervisor hands back a job that waited too long and releases it; the hub claims
    the same bytes again and a slot starts them. The stale ticket must only be forgotten:
    releasing it again removed the new copy, which was running (found by an adversarial
    run: one job twice at once in one process)."""
    engine: Engine = hub.ctx.engine
    board = hub.ctx.board
    engine.enqueue(new_job("/data/once", "high"), "high")
    hub._cycle()  # claims it for the idle slot
    (stale,) = board.take_back_stale(time.monotonic() + 1) or []
    (raw,) = engine.held("high", W).reserved
    assert engine.release("high", W, [raw]) == 1  # what the supervisor does next
    hub._accounts.job_seconds, hub._dry = 0.0001, False  # short jobs: a reserve beside it
    hub._cycle()  # claims the same bytes again, queued behind the stale ticket
    assert engine.held("high", W).reserved == [raw]
    with hub._cond:  # a slot reaches the stale ticket first...
        first = hub._work.popleft()
        assert first.index == stale.index and not hub._startable(first, 0)
    hub._cycle()  # ...and the hub must not release its bytes (the new copy's) again
    ticket = hub.next_ticket(0)
    assert ticket is not None and board.state(ticket.index) is State.RUNNING
    hub._cycle()  # records the start
    assert engine.held("high", W).processing == [raw]
    assert not hub._work and not engine.held("high", W).reserved, "a second copy would run"
    assert engine.pending_length("high") == 0, "the running job went back to the queue"
    assert board.state(stale.index) is State.FREE, "the stale entry is freed, not leaked"
