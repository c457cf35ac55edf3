"""Replies that come late (issue 9, item 10): the command ran, the client gave up waiting.

redis-py used to resend such a command by itself: a claim of 3 then moved 6 jobs into the
worker's list, 3 of them unknown to it. Now nothing is resent blindly; the caller hears of
the timeout and a worker's hub re-reads its own lists and hands back what it does not know.
The late replies are real: a TCP proxy (tests/proxy.py) holds the server's reply back.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from jobqueue.config import Settings
from jobqueue.engine import Engine, RedisError
from jobqueue.job import new_job
from tests.conftest import make_settings
from tests.helpers import local_worker, settled, wait_for
from tests.proxy import Proxy
from tests.redis_server import RedisServer
from tests.sample_handlers import executions
from tests.test_worker import python_settings

W = "host:1:0:late"


@pytest.fixture
def proxy(redis_server: RedisServer, redis_url: str) -> Iterator[Proxy]:
    with Proxy(redis_server.port) as proxied:
        yield proxied


def through(proxy: Proxy, settings: Settings) -> Settings:
    settings.redis.url = proxy.url
    settings.redis.read_timeout = 0.3
    return settings


def test_a_claim_whose_reply_was_late_moves_its_jobs_once(redis_url: str, proxy: Proxy) -> None:
    direct = Engine.from_settings(make_settings(redis_url))
    direct.enqueue_many([(new_job(f"/data/{i}", "high"), "high") for i in range(7)])
    engine = Engine.from_settings(through(proxy, make_settings(redis_url)))
    engine.registry.register(W, {}, ["high"], ttl=30)
    assert len(engine.claim("high", W, 1) or []) == 1  # the script is loaded now
    proxy.delay_replies(0.6)
    with pytest.raises(RedisError):
        engine.claim("high", W, 3)
    wait_for(lambda: len(direct.held("high", W).reserved) >= 4)
    assert len(direct.held("high", W).reserved) == 4, "the claim ran once"
    assert direct.pending_length("high") == 3
    engine.close()
    direct.close()


def test_a_worker_whose_replies_come_late_runs_every_job_once(
    redis_url: str, proxy: Proxy, tmp_path: Path
) -> None:
    log = tmp_path / "executions.ndjson"
    settings = through(proxy, python_settings(redis_url, count=2))
    direct = Engine.from_settings(make_settings(redis_url))
    jobs = [new_job(f"/data/{i}", "high", sleep_ms=2, log=str(log)) for i in range(300)]
    direct.enqueue_many([(job, "high") for job in jobs])
    with local_worker(settings):
        for done in (50, 100, 150, 200):  # a late reply, whatever the next one is, four times
            wait_for(lambda done=done: len(executions(log)) >= done * 2)
            proxy.delay_replies(0.6)
        wait_for(lambda: settled(settings, direct, 300), timeout=60)
    ends = Counter(e["id"] for e in executions(log) if e["event"] == "end")
    assert set(ends) == {job.id for job in jobs}
    assert max(ends.values()) == 1, "no job ran twice"
    direct.close()
