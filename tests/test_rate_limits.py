"""Per-queue consumer rate limits (worker.rate_limits): a token bucket on Redis' clock taken
at claim, shared by every worker process; idle slots serve the other queues meanwhile.

Only upper bounds on rates are asserted (a loaded machine can only make a run slower), and
the other queue's freedom is shown by order, not by time."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from jobqueue.cli import app
from jobqueue.config import Settings, load_settings, parse_rate
from jobqueue.engine import Engine, Inspector
from jobqueue.errors import ConfigError
from jobqueue.job import new_job
from tests.conftest import make_settings
from tests.helpers import spawn, stop_process, wait_for, write_config
from tests.sample_handlers import executions

RATE = 40.0  # jobs per second, fleet-wide
BURST = 4  # a tenth of a second's jobs (WorkerConfig.rates)
PROCESSES, SLOTS = 3, 4
# The limit is taken at claim; the test sees starts. A starved process may start at once the
# jobs it claimed earlier: with no prefetch, at most one per slot, so starts may run ahead of
# the tokens by this many and never more. A limit not enforced starts all 120 in well under
# a second and breaks both checks by far.
HELD = PROCESSES * SLOTS


def test_rates_parse_and_name_a_priority(monkeypatch: pytest.MonkeyPatch) -> None:
    assert parse_rate("50/s") == 50 and parse_rate("600/m") == 10 and parse_rate(2) == 2
    for bad in ("50", "fast", "0/s", "-1/s", "10/d"):
        with pytest.raises(ValueError, match="rate"):
            parse_rate(bad)
    monkeypatch.setenv("JOBQUEUE_WORKER__RATE_LIMITS", '{"urgent": "5/s"}')
    with pytest.raises(ConfigError, match="rate_limits: no priority urgent"):
        load_settings()


def test_three_worker_processes_share_one_limit_and_other_queues_flow(
    redis_url: str, tmp_path: Path
) -> None:
    settings: Settings = make_settings(
        redis_url,
        worker={
            "count": SLOTS,
            "prefetch": 0,
            "heartbeat_ttl": "2s",
            "claim_timeout": "200ms",
            "allowed_roots": ["/"],
            "rate_limits": {"low": f"{RATE:g}/s"},
            "handler": {"type": "python", "callable": "tests.sample_handlers:record"},
        },
    )
    engine = Engine.from_settings(settings)
    limited = [new_job(f"/low/{i}", "low") for i in range(120)]
    free = [new_job(f"/high/{i}", "high") for i in range(60)]
    engine.enqueue_many([(job, "low") for job in limited])
    engine.enqueue_many([(job, "high") for job in free])
    log = tmp_path / "runs.ndjson"
    config = write_config(tmp_path / "config.yaml", settings)
    workers = [spawn("worker", config, JQ_TEST_LOG=str(log)) for _ in range(PROCESSES)]
    try:
        labels = {p: settings.worker.queue_of(p) for p in settings.worker.priorities}
        wait_for(
            lambda: Inspector(engine).stats(labels).completed == len(limited) + len(free),
            timeout=120,
        )
    finally:
        for worker in workers:
            stop_process(worker)
    starts = {e["id"]: e["t"] for e in executions(log) if e["event"] == "start"}
    low = sorted(starts[job.id] for job in limited)
    high = sorted(starts[job.id] for job in free)
    assert len({e["pid"] for e in executions(log)}) > 1, "more than one process took jobs"
    # Upper bounds only (a loaded machine can only make a run slower): the whole run no
    # faster than the limit, and any one second at most the rate, beside the first burst and
    # what the processes held.
    assert (len(low) - BURST - HELD) / (low[-1] - low[0]) <= RATE
    assert max(sum(1 for t in low if s <= t < s + 1) for s in low) <= RATE + BURST + HELD
    # the other queue was never held up by the limit: it was done long before the low one
    assert high[-1] < low[len(low) // 2]
    shown = CliRunner().invoke(app, ["admin", "stats", "--json", "--config", str(config)])
    limit = json.loads(shown.stdout)["rate_limits"]["low"]
    assert limit["per_second"] == RATE and limit["throttled_claims"] > 0
    text = CliRunner().invoke(app, ["admin", "stats", "--config", str(config)]).stdout
    assert "rate limit low: 40 jobs/s for the whole fleet" in text
    engine.close()
