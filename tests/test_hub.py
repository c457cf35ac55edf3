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
from jobqueue.roles.worker.tickets import Result
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


def test_a_suspect_not_yet_taken_by_a_slot_is_not_handed_back_as_stale(hub: Hub) -> None:
    """Found by the SIGKILL storm (tests/chaos): a job whose worker died running it waits
    to run alone; once nothing else ran, it was queued for a slot, and when no slot thread
    took it within prefetch_max_wait / 2 (a busy host) it was handed back as stale while the
    hub still counted it as running alone, so the process never claimed again (a job cut
    by a kill started again 67 s later, at shutdown)."""
    engine: Engine = hub.ctx.engine
    suspect = new_job("/data/suspect", "high").model_copy(update={"crashes": 1})
    engine.enqueue_many([(suspect, "high"), (new_job("/data/next", "high"), "high")])
    hub._cycle()  # claims the suspect: it waits to run alone
    hub._cycle()  # nothing runs here: it is queued for a slot
    time.sleep(hub._hold)  # no slot thread takes it in time
    hub._cycle()
    assert hub._work, "the suspect was handed back, and the hub waits for it for ever"
    ticket = hub.next_ticket(0)
    assert ticket is not None and ticket.claimed.job is not None
    assert ticket.claimed.job.id == suspect.id
    hub._cycle()  # records its start
    hub.report(Result(ticket, None))
    hub._cycle()  # acks it, and claims again
    hub._cycle()
    (raw,) = engine.held("high", W).reserved + engine.held("high", W).processing
    assert engine.decode("high", raw).job.id != suspect.id  # type: ignore[union-attr]


def test_a_waiting_suspect_goes_back_at_shutdown(hub: Hub) -> None:
    engine: Engine = hub.ctx.engine
    engine.enqueue(new_job("/data/suspect", "high").model_copy(update={"crashes": 1}), "high")
    hub._cycle()
    hub._cycle()  # queued for a slot, running alone
    hub.stop()
    assert not hub._cycle(), "the process may exit: nothing runs, nothing is held"
    assert engine.pending_length("high") == 1 and not engine.held("high", W)


def test_a_suspect_handed_back_at_its_start_does_not_stop_the_claims(hub: Hub) -> None:
    """Found by the network-faults scenario (tests/chaos): after a partition the worker
    registered again, so the suspect queued to run alone was refused at its start (claimed
    under the old lease) and handed back; the hub still counted it as running alone and
    never claimed or isolated anything again: three jobs sat in its reserved list for
    minutes while its heartbeat was alive."""
    engine: Engine = hub.ctx.engine
    board = hub.ctx.board
    first = new_job("/data/first", "high").model_copy(update={"crashes": 1})
    second = new_job("/data/second", "high").model_copy(update={"crashes": 1})
    engine.enqueue_many([(first, "high"), (second, "high")])
    hub._accounts.job_seconds, hub._dry = 0.0001, False
    hub._cycle()  # claims both: they wait to run alone
    hub._cycle()  # the first is queued for a slot
    lease = engine.registry.register(W, {}, ("high", "low"), hub.ctx.settings.worker.heartbeat_ttl)
    board.registered(time.monotonic(), lease.token)  # a registration since its claim
    with hub._cond:
        ticket = hub._work.popleft()
        assert not hub._startable(ticket, 0), "claimed under the old lease: handed back"
    hub._cycle()  # sends the hand-back; the next suspect is queued
    assert hub._work, "nothing is queued: the hub still thinks a suspect runs alone"
