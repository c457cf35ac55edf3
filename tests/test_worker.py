"""The worker role against a real Redis: a supervisor in a test thread, its worker processes
real processes, handlers reporting through a log file the jobs name."""

from __future__ import annotations

import itertools
import json
import sys
from pathlib import Path

import pytest
import redis

from jobqueue.config import Settings
from jobqueue.engine import Engine
from jobqueue.job import new_job
from tests.conftest import make_settings
from tests.helpers import running_worker, settled, stats_of, wait_for
from tests.sample_handlers import executions


@pytest.fixture
def log(tmp_path: Path) -> Path:
    return tmp_path / "executions.ndjson"


def python_settings(redis_url: str, fn: str = "record", **worker: object) -> Settings:
    return make_settings(
        redis_url,
        worker={
            "count": 4,
            "heartbeat_ttl": "2s",
            "claim_timeout": "200ms",
            "promote_interval": "50ms",
            "shutdown_grace": "5s",
            "backoff": {"base": "10ms", "max": "50ms"},
            "allowed_roots": ["/"],
            "handler": {"type": "python", "callable": f"tests.sample_handlers:{fn}"},
            **worker,
        },
    )


def enqueue(
    engine: Engine, n: int, log: Path, priority: str = "high", **fields: object
) -> list[str]:
    jobs = [new_job(f"/data/{priority}/{i}", priority, log=str(log), **fields) for i in range(n)]
    engine.enqueue_many([(job, priority) for job in jobs])
    return [job.id for job in jobs]


def ends(log: Path) -> list[dict[str, object]]:
    return [e for e in executions(log) if e["event"] == "end"]


def test_jobs_complete_and_lists_drain(redis_url: str, log: Path) -> None:
    settings = python_settings(redis_url)
    engine = Engine.from_settings(settings)
    ids = enqueue(engine, 300, log) + enqueue(engine, 100, log, "low")
    with running_worker(settings):
        wait_for(lambda: settled(settings, engine, 400))
    stats = stats_of(settings, engine)
    assert stats.completed == 400 and stats.dead_letter == 0
    assert sorted(e["id"] for e in ends(log)) == sorted(ids)
    assert stats.registered == 0, "a stopped worker deregisters"


def test_failures_retry_with_backoff_then_dead_letter(redis_url: str, log: Path) -> None:
    settings = python_settings(redis_url, max_retries=2)
    engine = Engine.from_settings(settings)
    engine.enqueue(new_job("/data/fail-me", "high", log=str(log)), "high")
    with running_worker(settings):
        wait_for(lambda: settled(settings, engine, 1))
    stats = stats_of(settings, engine)
    assert stats.dead_letter == 1 and stats.completed == 0
    assert stats.queues["high"].counters["retried"] == 2
    assert [e["retries"] for e in ends(log)] == [0, 1, 2]  # first attempt + max_retries


def test_poison_payloads_go_to_the_dlq_and_the_worker_keeps_going(
    redis_url: str, raw_redis: redis.Redis, log: Path
) -> None:
    settings = python_settings(redis_url)
    engine = Engine.from_settings(settings)
    pending = engine.keys.queue("high").pending
    raw_redis.lpush(pending, b"not json at all")
    raw_redis.lpush(pending, json.dumps({"id": 7, "filepath": ["x"], "priority": 1}))
    raw_redis.lpush(pending, b'{"id": "big", "filepath": "' + b"x" * (2 << 20) + b'"}')
    good = enqueue(engine, 20, log)
    with running_worker(settings):
        wait_for(lambda: settled(settings, engine, 23))
    stats = stats_of(settings, engine)
    assert stats.dead_letter == 3 and stats.completed == 20
    assert sorted(e["id"] for e in ends(log)) == sorted(good)
    reasons = [
        json.loads(e)["last_error"] for e in raw_redis.lrange(engine.keys.queue("high").dead, 0, -1)
    ]
    assert any("max_payload_bytes" in r for r in reasons)
    assert sum("malformed" in r for r in reasons) == 2


def test_weighted_priorities_give_low_its_share_with_one_busy_slot(
    redis_url: str, log: Path
) -> None:
    settings = python_settings(redis_url, count=1, weights={"high": 8, "low": 2})
    engine = Engine.from_settings(settings)
    enqueue(engine, 300, log, "high", sleep_ms=2)
    enqueue(engine, 300, log, "low", sleep_ms=2)
    with running_worker(settings):
        wait_for(lambda: len(ends(log)) >= 200)
    early = [e["priority"] for e in ends(log)[:200]]
    low_share = early.count("low") / len(early)
    assert 0.1 <= low_share <= 0.3, f"low got {low_share:.0%} of early completions"


def test_idempotent_job_already_done_is_acked_without_running(redis_url: str, log: Path) -> None:
    settings = python_settings(redis_url)
    engine = Engine.from_settings(settings)
    first = new_job("/data/a", "high", idempotency_key="same-effect", log=str(log))
    engine.enqueue(first, "high")
    engine.registry.register("earlier-worker", {}, ["high"], ttl=30)
    raw = engine.claim("high", "earlier-worker", 1)[0]  # type: ignore[index]
    engine.ack("high", "earlier-worker", [engine.decode("high", raw)])
    # A duplicate copy (as after a reap) bypasses the enqueue-time dedupe.
    engine.client.lpush(engine.keys.queue("high").pending, first.to_json())
    with running_worker(settings):
        wait_for(lambda: settled(settings, engine, 2))
    assert executions(log) == []
    assert stats_of(settings, engine).completed == 2


def test_long_job_keeps_its_heartbeat_and_is_never_reaped(redis_url: str, log: Path) -> None:
    settings = python_settings(
        redis_url, count=1, heartbeat_ttl="1s", claim_timeout="200ms", job_timeout="30s"
    )
    settings.reaper.interval = 0.1
    engine = Engine.from_settings(settings)
    enqueue(engine, 1, log, sleep_ms=4000)  # 4x the heartbeat TTL
    with running_worker(settings, with_reaper=True):
        wait_for(lambda: settled(settings, engine, 1), timeout=30)
    stats = stats_of(settings, engine)
    assert len(ends(log)) == 1 and stats.completed == 1
    assert stats.queues["high"].counters.get("reaped", 0) == 0


def test_a_prefetched_job_is_never_held_behind_a_slow_one(
    redis_url: str, log: Path, tmp_path: Path
) -> None:
    """Issue 9, item 1: a slot claimed a batch and ran it in turn, so instant jobs waited
    behind a slow one at its front while the other slot sat idle (4 of 9 instant jobs done
    only after the 4 s job)."""
    settings = python_settings(redis_url, count=2, shutdown_grace="1s")
    engine = Engine.from_settings(settings)
    gate = tmp_path / "gate"  # the slow job runs until the test opens it
    (slow,) = enqueue(engine, 1, log, gate=str(gate))
    quick = enqueue(engine, 9, log)
    with running_worker(settings):
        try:
            wait_for(lambda: {e["id"] for e in ends(log)} >= set(quick), timeout=60)
            assert slow not in {e["id"] for e in ends(log)}, (
                "all quick jobs ran beside the slow one"
            )
        finally:
            gate.touch()


def test_a_finished_job_is_acked_while_the_next_one_runs(
    redis_url: str, log: Path, tmp_path: Path
) -> None:
    """Issue 9, item 2: a finished job stayed unacked while the next job of its batch ran,
    so a crash then ran it again (and with max_retries 0 dead-lettered a job that had
    succeeded)."""
    settings = python_settings(redis_url, count=1, shutdown_grace="1s")
    engine = Engine.from_settings(settings)
    enqueue(engine, 1, log)
    gate = tmp_path / "gate"  # the next job runs until the test opens it
    (slow,) = enqueue(engine, 1, log, gate=str(gate))
    with running_worker(settings):
        try:
            wait_for(
                lambda: any(e["id"] == slow and e["event"] == "start" for e in executions(log))
            )
            wait_for(lambda: stats_of(settings, engine).completed == 1, timeout=30)
            assert not any(e["id"] == slow for e in ends(log))
        finally:
            gate.touch()


def test_sync_python_job_past_its_timeout_never_runs_beside_its_retry(
    redis_url: str, log: Path
) -> None:
    """Issue 9, item 8: a sync handler past job_timeout kept running while its retry started
    (four overlapping runs of one job), and each hung job left a thread behind. Now the
    supervisor stops the process that runs it (after the other jobs there finish) before the
    retry can start."""
    settings = python_settings(
        redis_url, fn="sleep_long", count=2, job_timeout="500ms", max_retries=1
    )
    engine = Engine.from_settings(settings)
    (job_id,) = enqueue(engine, 1, log)
    with running_worker(settings):
        wait_for(lambda: settled(settings, engine, 1), timeout=30)
    starts = [e for e in executions(log) if e["event"] == "start"]
    assert len(starts) == 2 and {e["id"] for e in starts} == {job_id}
    assert starts[0]["pid"] != starts[1]["pid"], "the retry ran in a fresh process"
    dead = json.loads(engine.client.lindex(engine.keys.queue("high").dead, 0))  # type: ignore[arg-type]
    assert "job_timeout" in dead["last_error"]
    assert stats_of(settings, engine).dead_letter == 1


def test_async_python_handler_runs_and_times_out(redis_url: str, log: Path) -> None:
    settings = python_settings(redis_url, fn="async_sleep", job_timeout="200ms", max_retries=0)
    engine = Engine.from_settings(settings)
    enqueue(engine, 5, log, sleep_ms=1)
    engine.enqueue(new_job("/data/slow", "high", sleep_ms=2000, log=str(log)), "high")
    with running_worker(settings):
        wait_for(lambda: settled(settings, engine, 6))
    stats = stats_of(settings, engine)
    assert (stats.completed, stats.dead_letter) == (5, 1)


def test_exec_handler_argv_env_stderr_and_timeout_of_the_whole_group(
    redis_url: str, tmp_path: Path
) -> None:
    """Issue 9, item 7: on job_timeout only the direct child was killed; a shell's own
    children kept running."""
    out, pids = tmp_path / "out.txt", tmp_path / "pids.txt"
    script = tmp_path / "handler.py"
    script.write_text(
        "import os, subprocess, sys, time\n"
        "out, pids, path, job_id = sys.argv[1:5]\n"
        "assert os.environ['JOBQUEUE_JOB_ID'] == job_id\n"
        "if 'slow' in path:\n"
        "    child = subprocess.Popen(['sleep', '30'])\n"
        "    open(pids, 'a').write(f'{child.pid}\\n')\n"
        "    time.sleep(30)\n"
        "if 'bad' in path: sys.stderr.write('cannot parse ' + path); sys.exit(3)\n"
        "open(out, 'a').write(path + '\\n')\n"
    )
    command = [sys.executable, str(script), str(out), str(pids), "{filepath}", "{id}"]
    settings = python_settings(
        redis_url,
        max_retries=0,
        job_timeout="1s",
        allowed_roots=[str(tmp_path)],
        handler={"type": "exec", "command": command},
    )
    engine = Engine.from_settings(settings)
    names = ["ok one.txt", "bad.txt", "slow.txt", "ok-'quote'.txt"]
    for name in names:
        engine.enqueue(new_job(str(tmp_path / name), "high"), "high")
    engine.enqueue(new_job("/etc/passwd", "high"), "high")
    with running_worker(settings):
        wait_for(lambda: settled(settings, engine, 5))
    assert sorted(out.read_text().splitlines()) == sorted(
        [str(tmp_path / "ok one.txt"), str(tmp_path / "ok-'quote'.txt")]
    )
    errors = sorted(
        json.loads(e)["last_error"]
        for e in engine.client.lrange(engine.keys.queue("high").dead, 0, -1)
    )
    assert any("exit 3" in e and "cannot parse" in e for e in errors)
    assert any("killed after job_timeout" in e for e in errors)
    assert any("outside worker.allowed_roots" in e for e in errors)
    (grandchild,) = (int(p) for p in pids.read_text().split())
    wait_for(lambda: not Path(f"/proc/{grandchild}").exists() or _zombie(grandchild), timeout=30)


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] == "Z"
    except OSError:
        return True


def test_half_open_breaker_admits_one_probe(redis_url: str, log: Path) -> None:
    """Design guarantee 6: in half-open exactly one job runs (the Go original let every slot
    through). Each probe fails, so each reopens the breaker for a full cooldown: with one
    probe per half-open, no two jobs start closer together than the cooldown."""
    settings = python_settings(
        redis_url, count=8, max_retries=50, backoff={"base": "1s", "max": "1s"}
    )
    settings.circuit_breaker.min_samples = 4
    cooldown = settings.circuit_breaker.cooldown_period = 0.5
    engine = Engine.from_settings(settings)
    enqueue(engine, 300, log, sleep_ms=20, fail=True)

    def starts() -> list[float]:
        return [float(e["t"]) for e in executions(log) if e["event"] == "start"]  # type: ignore[arg-type]

    with running_worker(settings):
        wait_for(lambda: _breaker_state(engine) == "open", timeout=20)
        opened = max(starts())
        wait_for(lambda: len([t for t in starts() if t > opened]) >= 3, timeout=20)
    probes = [t for t in starts() if t > opened][:3]
    gaps = [b - a for a, b in itertools.pairwise(probes)]
    assert all(gap >= cooldown * 0.8 for gap in gaps), f"probes {gaps} s apart"


def _breaker_state(engine: Engine) -> str:
    states = [info.get("breaker", "") for info in engine.registry.workers().values()]
    return str(states[0]) if states else ""


def test_jobs_a_worker_holds_unknowingly_are_handed_back(redis_url: str, log: Path) -> None:
    """As after a claim whose reply was lost: the job sits in a live worker's reserved list,
    unknown to it. The worker hands it back (no attempt charged) and it runs."""
    settings = python_settings(redis_url, count=1, heartbeat_ttl="1s", claim_timeout="200ms")
    engine = Engine.from_settings(settings)
    orphan = new_job("/data/orphan", "high", log=str(log))
    with running_worker(settings):
        wait_for(engine.registry.workers)
        (worker_id,) = engine.registry.workers()
        engine.client.lpush(engine.keys.queue("high").reserved(worker_id), orphan.to_json())
        wait_for(lambda: stats_of(settings, engine).completed == 1, timeout=30)
    assert [(e["id"], e["retries"]) for e in ends(log)] == [(orphan.id, 0)]
