"""The event ledger: one NDJSON line per event, whole lines under concurrent appends."""

from __future__ import annotations

import json
import threading
from pathlib import Path

from jobqueue.engine import Engine
from jobqueue.job import new_job
from jobqueue.observe.ledger import Ledger
from tests.conftest import make_settings
from tests.helpers import running_worker, settled, wait_for


def test_concurrent_appends_stay_whole_lines(tmp_path: Path) -> None:
    ledgers = [Ledger(str(tmp_path)) for _ in range(4)]  # as if four processes

    def write(ledger: Ledger, n: int) -> None:
        for i in range(500):
            ledger.record("done", f"w{n}", f"job-{n}-{i}", "high", ms=1.5, error="x" * (1 + i % 50))

    threads = [threading.Thread(target=write, args=(ledger, n)) for n, ledger in enumerate(ledgers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    (day_file,) = tmp_path.glob("events-*.ndjson")
    lines = day_file.read_text().splitlines()
    assert len(lines) == 2000
    events = [json.loads(line) for line in lines]
    assert {e["type"] for e in events} == {"done"}
    assert set(events[0]) == {"ts", "type", "worker", "job_id", "queue", "ms", "error"}


def test_disabled_ledger_writes_nothing(tmp_path: Path) -> None:
    ledger = Ledger("")
    ledger.record("claim", "w", "j", "q")
    assert not ledger.enabled and list(tmp_path.iterdir()) == []


def test_worker_writes_claim_done_retry_dead(redis_url: str, tmp_path: Path) -> None:
    settings = make_settings(
        redis_url,
        worker={
            "count": 2,
            "max_retries": 1,
            "backoff": {"base": "10ms", "max": "10ms"},
            "promote_interval": "50ms",
            "allowed_roots": ["/"],
            "handler": {"type": "python", "callable": "tests.sample_handlers:record"},
        },
        observability={"ledger": {"dir": str(tmp_path)}},
    )
    engine = Engine.from_settings(settings)
    ok, bad = new_job("/data/ok", "high"), new_job("/data/fail", "low")
    engine.enqueue_many([(ok, "high"), (bad, "low")])
    with running_worker(settings):
        wait_for(lambda: settled(settings, engine, 2))
    events = [
        json.loads(line)
        for f in tmp_path.glob("events-*.ndjson")
        for line in f.read_text().splitlines()
    ]
    kinds = {(e["job_id"], e["type"]) for e in events}
    assert {(ok.id, "claim"), (ok.id, "done"), (bad.id, "retry"), (bad.id, "dead")} <= kinds
    done = next(e for e in events if e["type"] == "done")
    assert done["queue"] == "high" and done["ms"] >= 0
