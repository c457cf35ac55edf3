"""The worker's execution model, end to end: real ``jobqueue`` processes, real signals.

Each test here is one of the faults issue 9 lists, reproduced as a user would (config, job
JSON, the engine's enqueue, the Inspector's counts, a handler writing a log), so that it
runs unchanged against the worker this replaced (commit ccf2dff), where it fails, and this
one, where it passes. Item 6 (orphans after stalls) is tests/test_stalls.py; item 12's
racing reapers and the claim half of item 10 need the new engine API and are in
tests/test_engine.py and tests/test_replays.py.
"""

from __future__ import annotations

import json
import os
import signal
from collections import Counter
from pathlib import Path

import pytest
from typer.testing import CliRunner

from jobqueue.cli import app
from jobqueue.config import Settings
from jobqueue.engine import Engine, Inspector, RedisError, RetryPolicy
from jobqueue.job import new_job
from tests.helpers import (
    alive,
    kill_tree,
    settled,
    spawn,
    stats_of,
    stop_process,
    wait_for,
    write_config,
)
from tests.proxy import Proxy
from tests.redis_server import RedisServer
from tests.sample_handlers import executions
from tests.test_e2e import e2e_settings

pytestmark = pytest.mark.e2e


@pytest.fixture
def log(tmp_path: Path) -> Path:
    return tmp_path / "executions.ndjson"


def events(log: Path, kind: str) -> list[dict[str, object]]:
    return [e for e in executions(log) if e["event"] == kind]


def ids(log: Path, kind: str) -> Counter[str]:
    return Counter(str(e["id"]) for e in events(log, kind))


def enqueue(engine: Engine, n: int, log: Path, **fields: object) -> list[str]:
    jobs = [
        new_job(f"/data/{fields.get('sleep_ms', 0)}/{i}", "high", log=str(log), **fields)
        for i in range(n)
    ]
    engine.enqueue_many([(job, "high") for job in jobs])
    return [job.id for job in jobs]


def start(settings: Settings, tmp_path: Path, role: str = "worker") -> object:
    return spawn(role, write_config(tmp_path / f"{role}-{os.urandom(3).hex()}.yaml", settings))


def recorded_as_started(engine: Engine) -> bool:
    """A worker's processing list holds a job: its start has reached Redis (a few ms after
    the handler began), so a reaper will count the attempt."""
    lists = [k for k in Inspector(engine).scan() if b":processing:" in k]
    return any(engine.client.llen(key) for key in lists)


def pending_jobs(engine: Engine) -> list[dict[str, object]]:
    return [json.loads(r) for r in engine.client.lrange(engine.keys.queue("high").pending, 0, -1)]


# -- 1. no job held hostage ----------------------------------------------------------------


def test_1_instant_jobs_never_wait_behind_a_slow_one(
    redis_url: str, tmp_path: Path, log: Path
) -> None:
    settings = e2e_settings(redis_url, count=2, shutdown_grace="1s")
    engine = Engine.from_settings(settings)
    gate = tmp_path / "gate"  # the slow job runs until the test opens it (a sleep raced start-up)
    (slow,) = enqueue(engine, 1, log, gate=str(gate))
    quick = enqueue(engine, 9, log)
    worker = start(settings, tmp_path)
    try:
        wait_for(lambda: set(quick) <= set(ids(log, "end")), timeout=60)
        assert slow in ids(log, "start") and slow not in ids(log, "end")
    finally:
        gate.touch()
        kill_tree(worker)  # type: ignore[arg-type]


def test_1_a_worker_started_later_gets_its_share(redis_url: str, tmp_path: Path, log: Path) -> None:
    settings = e2e_settings(redis_url, count=1)
    engine = Engine.from_settings(settings)
    jobs = enqueue(engine, 4, log, sleep_ms=3000)
    first = start(settings, tmp_path)
    wait_for(lambda: events(log, "start"))
    second = start(settings, tmp_path)
    wait_for(lambda: set(jobs) <= set(ids(log, "end")), timeout=30)
    assert len({e["pid"] for e in events(log, "start")}) == 2, "both workers ran jobs"
    for proc in (first, second):
        stop_process(proc)  # type: ignore[arg-type]


# -- 2, 3. prompt acks; attempts charged only to jobs that started --------------------------


def test_2_a_finished_job_is_acked_before_its_worker_can_crash(
    redis_url: str, tmp_path: Path, log: Path
) -> None:
    settings = e2e_settings(redis_url, count=1, max_retries=0)
    engine = Engine.from_settings(settings)
    (_done,) = enqueue(engine, 1, log)
    (running,) = enqueue(engine, 1, log, sleep_ms=30_000)
    worker = start(settings, tmp_path)
    wait_for(lambda: running in ids(log, "start") and recorded_as_started(engine))
    kill_tree(worker)  # type: ignore[arg-type]
    reaper = start(settings, tmp_path, "reaper")
    wait_for(lambda: settled(settings, engine, 2), timeout=30)
    stop_process(reaper)  # type: ignore[arg-type]
    dead = [
        json.loads(e)["id"] for e in engine.client.lrange(engine.keys.queue("high").dead, 0, -1)
    ]
    assert dead == [running], "only the job that was running when the worker died"
    assert stats_of(settings, engine).completed == 1


def test_3_the_reaper_charges_an_attempt_only_to_the_job_that_started(
    redis_url: str, tmp_path: Path, log: Path
) -> None:
    settings = e2e_settings(redis_url, count=1, max_retries=0)
    engine = Engine.from_settings(settings)
    jobs = enqueue(engine, 6, log, sleep_ms=5000)
    worker = start(settings, tmp_path)
    wait_for(lambda: events(log, "start") and recorded_as_started(engine))
    kill_tree(worker)  # type: ignore[arg-type]
    reaper = start(settings, tmp_path, "reaper")
    wait_for(
        lambda: settled(settings, engine, 1) or stats_of(settings, engine).dead_letter, timeout=15
    )
    stop_process(reaper)  # type: ignore[arg-type]
    (started,) = ids(log, "start")
    assert {str(j["id"]) for j in pending_jobs(engine)} == set(jobs) - {started}
    assert all(j["retries"] == 0 for j in pending_jobs(engine))
    assert stats_of(settings, engine).dead_letter == 1


# -- 4. SIGTERM hands back what has not started at once ----------------------------------------


def test_4_sigterm_hands_back_unstarted_jobs_at_once(
    redis_url: str, tmp_path: Path, log: Path
) -> None:
    settings = e2e_settings(redis_url, count=1, shutdown_grace="30s")
    engine = Engine.from_settings(settings)
    enqueue(engine, 1, log, sleep_ms=30_000)
    enqueue(engine, 5, log)
    worker = start(settings, tmp_path)
    wait_for(lambda: events(log, "start"))
    worker.send_signal(signal.SIGTERM)  # type: ignore[attr-defined]
    wait_for(lambda: len(pending_jobs(engine)) == 5, timeout=20)  # the running job takes 30 s
    assert worker.poll() is None, "still within its grace, finishing the running job"  # type: ignore[attr-defined]
    kill_tree(worker)  # type: ignore[arg-type]


# -- 5. a handler that holds the GIL cannot starve the heartbeat ---------------------------


def test_5_a_handler_holding_the_gil_for_four_ttls_is_never_reaped(
    redis_url: str, tmp_path: Path, log: Path
) -> None:
    settings = e2e_settings(redis_url, count=1, heartbeat_ttl="1s", job_timeout="60s")
    engine = Engine.from_settings(settings)
    (job,) = enqueue(engine, 1, log, burn_s=4.0)
    reaper = start(settings, tmp_path, "reaper")
    worker = start(settings, tmp_path)
    wait_for(lambda: settled(settings, engine, 1), timeout=40)
    for proc in (worker, reaper):
        stop_process(proc)  # type: ignore[arg-type]
    assert ids(log, "start") == Counter({job: 1}), "it ran once"
    stats = stats_of(settings, engine)
    assert stats.completed == 1 and stats.queues["high"].counters.get("reaped", 0) == 0


# -- 7. exec children never outlive their job ---------------------------------------------------


def exec_settings(redis_url: str, tmp_path: Path, **worker: object) -> Settings:
    script = tmp_path / "spawner.sh"
    script.write_text('echo $$ >> "$1"; sleep 60 & echo $! >> "$1"; wait\n')
    command = ["sh", str(script), str(tmp_path / "pids")]
    return e2e_settings(
        redis_url, handler={"type": "exec", "command": command}, max_retries=0, **worker
    )


def run_spawner(settings: Settings, tmp_path: Path) -> tuple[Engine, object, list[int]]:
    """One job for the spawner script, a worker running it: the pids of its shell and of the
    shell's child, once both are up."""
    engine = Engine.from_settings(settings)
    engine.enqueue(new_job("/data/x", "high"), "high")
    worker = start(settings, tmp_path)
    pids_file = tmp_path / "pids"
    wait_for(lambda: pids_file.exists() and len(pids_file.read_text().split()) == 2)
    return engine, worker, [int(p) for p in pids_file.read_text().split()]


def test_7_sigterm_stops_exec_children_and_grandchildren(redis_url: str, tmp_path: Path) -> None:
    settings = exec_settings(redis_url, tmp_path, shutdown_grace="1s")
    engine, worker, pids = run_spawner(settings, tmp_path)
    assert stop_process(worker) == 0  # type: ignore[arg-type]
    wait_for(lambda: not any(alive(pid) for pid in pids), timeout=30)  # they sleep 60 s
    assert engine.pending_length("high") == 1, "handed back to run again elsewhere"


def test_7_job_timeout_kills_the_exec_process_group(redis_url: str, tmp_path: Path) -> None:
    settings = exec_settings(redis_url, tmp_path, job_timeout="1s")
    engine = Engine.from_settings(settings)
    engine.enqueue(new_job("/data/x", "high"), "high")
    worker = start(settings, tmp_path)
    wait_for(lambda: settled(settings, engine, 1), timeout=20)
    pids = [int(p) for p in (tmp_path / "pids").read_text().split()]
    wait_for(lambda: not any(alive(pid) for pid in pids), timeout=30)  # they sleep 60 s
    stop_process(worker)  # type: ignore[arg-type]


# -- 8. a sync handler past its timeout never runs beside its retry --------------------------


def test_8_a_timed_out_sync_handler_never_overlaps_its_retries(
    redis_url: str, tmp_path: Path, log: Path
) -> None:
    settings = e2e_settings(
        redis_url,
        count=2,
        job_timeout="500ms",
        max_retries=2,
        backoff={"base": "10ms", "max": "10ms"},
        handler={"type": "python", "callable": "tests.sample_handlers:ticking_sleep"},
    )
    engine = Engine.from_settings(settings)
    enqueue(engine, 1, log)
    worker = start(settings, tmp_path)
    wait_for(lambda: settled(settings, engine, 1), timeout=60)
    stop_process(worker)  # type: ignore[arg-type]
    ticks = sorted((float(e["t"]), int(e["retries"])) for e in events(log, "tick"))  # type: ignore[arg-type]
    attempts = [attempt for _, attempt in ticks]
    assert set(attempts) == {0, 1, 2}
    assert attempts == sorted(attempts), "ticks of two attempts interleave: they overlapped"


# -- 9. bounds that lose jobs -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("section", "key", "value"),
    [("producer", "dedupe_ttl", "0s"), ("worker", "max_retries", 100_000)],
)
def test_9_config_refuses_bounds_that_lose_jobs(
    tmp_path: Path, section: str, key: str, value: object
) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(f"{section}:\n  {key}: {value}\n")
    result = CliRunner().invoke(app, ["config", "check", "--config", str(config)])
    assert result.exit_code == 2, result.output
    assert f"{section}.{key}" in result.stderr


def test_9_backoff_never_overflows() -> None:
    """2**1100 overflowed a float: the retry raised, and the job ran again and again
    without its attempts being counted."""
    policy = RetryPolicy(max_retries=5000, base=0.5, cap=30)
    assert all(0 <= policy.backoff(retries) <= 30 for retries in (1, 64, 1100, 10**6))


# -- 10. no blind replay of a command that timed out --------------------------------------------


def test_10_an_enqueue_whose_reply_was_late_is_not_sent_again(
    redis_server: RedisServer, redis_url: str
) -> None:
    """redis-py resent an EVALSHA whose reply came later than read_timeout; the first had
    run (only its reply was slow), so the job was enqueued twice or more."""
    direct = Engine.from_settings(e2e_settings(redis_url))
    with Proxy(redis_server.port) as proxy:
        settings = e2e_settings(proxy.url)
        settings.redis.read_timeout = 0.3
        engine = Engine.from_settings(settings)
        engine.enqueue(new_job("/data/warm-up", "low"), "low")  # the script is loaded now
        proxy.delay_replies(0.6)  # the enqueue's reply, not the next connection's
        try:
            engine.enqueue(new_job("/data/once", "high"), "high")
            told = False
        except RedisError:
            told = True
        wait_for(lambda: direct.pending_length("high") >= 1)
        assert direct.pending_length("high") == 1, "enqueued more than once"
        assert told, "the caller learns that the outcome is unknown"
        engine.close()


# -- 11. requeue-dlq moves what was dead when it started, once ------------------------------


def test_11_requeue_dlq_all_with_workers_running_moves_each_dead_job_once(
    redis_url: str, tmp_path: Path, log: Path
) -> None:
    settings = e2e_settings(
        redis_url,
        count=8,
        max_retries=0,
        handler={"type": "python", "callable": "tests.sample_handlers:always_fail"},
    )
    settings.circuit_breaker.min_samples = 1_000_000  # every job fails: keep the breaker shut
    config = write_config(tmp_path / "config.yaml", settings)
    engine = Engine.from_settings(settings)
    enqueue(engine, 1000, log)
    worker = spawn("worker", config)
    wait_for(lambda: stats_of(settings, engine).dead_letter == 1000, timeout=60)
    result = CliRunner().invoke(
        app, ["admin", "requeue-dlq", "--all", "--yes", "--json", "--config", str(config)]
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["moved"] == 1000
    wait_for(lambda: settled(settings, engine, 1000), timeout=60)
    stop_process(worker)
    assert max(ids(log, "start").values()) == 2, "each job ran once more, not twice more"


# -- 12. identical payloads in the scheduled set ----------------------------------------------


def test_12_two_copies_of_one_delayed_job_both_run(
    redis_url: str, tmp_path: Path, log: Path
) -> None:
    settings = e2e_settings(redis_url)
    engine = Engine.from_settings(settings)
    job = new_job("/data/twice", "high", log=str(log))
    engine.enqueue_many([(job, "high"), (job, "high")], delay=0.2)
    worker = start(settings, tmp_path)
    wait_for(lambda: ids(log, "end")[job.id] == 2, timeout=30)
    stop_process(worker)  # type: ignore[arg-type]


# -- a supervisor that stalls must not let a running job be reaped ----------------------------


def test_a_stalled_supervisor_does_not_get_its_running_job_reaped(
    redis_url: str, tmp_path: Path, log: Path
) -> None:
    """Found by an adversarial run: with the supervisor alone stopped, its lease keeper
    stopped, the reaper requeued the job its worker process was still running, and another
    worker ran it at the same time. The worker process now renews its own lease while its
    supervisor is late."""
    settings = e2e_settings(redis_url, count=1, heartbeat_ttl="1s", job_timeout="60s")
    engine = Engine.from_settings(settings)
    (job,) = enqueue(engine, 1, log, sleep_ms=4000)
    reaper = start(settings, tmp_path, "reaper")
    worker = start(settings, tmp_path)
    other = start(settings, tmp_path)
    wait_for(lambda: events(log, "start"))
    os.kill(worker.pid, signal.SIGSTOP)  # type: ignore[attr-defined]
    try:
        wait_for(lambda: events(log, "end"), timeout=20)
    finally:
        os.kill(worker.pid, signal.SIGCONT)  # type: ignore[attr-defined]
    wait_for(lambda: settled(settings, engine, 1), timeout=20)
    for proc in (worker, other, reaper):
        stop_process(proc)  # type: ignore[arg-type]
    assert ids(log, "start") == Counter({job: 1}), "it ran once"
    assert stats_of(settings, engine).queues["high"].counters.get("reaped", 0) == 0


# -- nothing a handler started outlives its worker, however the worker goes ------------------


def test_exec_children_die_with_a_worker_killed_by_sigkill(redis_url: str, tmp_path: Path) -> None:
    """Found by an adversarial run: exec commands (in process groups of their own, so that a
    timeout kills them whole) went on running after SIGKILL to the worker, while the reaper
    handed their jobs to another worker. A guard beside each worker process kills them."""
    settings = exec_settings(redis_url, tmp_path)
    engine, worker, pids = run_spawner(settings, tmp_path)
    # Killed once its start reached Redis (the hub's next trip), by when the worker has told
    # its guard the command's group: the moment between the command's start and that word
    # is a window docs/worker.md states (a loaded make test killed inside it once).
    wait_for(lambda: recorded_as_started(engine))
    kill_tree(worker)  # type: ignore[arg-type]
    wait_for(lambda: not any(alive(pid) for pid in pids), timeout=30)


def test_children_of_a_python_handler_die_with_its_worker(
    redis_url: str, tmp_path: Path, log: Path
) -> None:
    """Found by an adversarial run: a python handler's subprocess survived a clean SIGTERM
    (it stays in the worker process's group, which nothing signalled once it exited)."""
    settings = e2e_settings(
        redis_url,
        shutdown_grace="1s",
        handler={"type": "python", "callable": "tests.sample_handlers:spawn_sleeper"},
    )
    engine = Engine.from_settings(settings)
    enqueue(engine, 1, log)
    worker = start(settings, tmp_path)
    wait_for(lambda: events(log, "spawned"))
    (child,) = (int(e["child"]) for e in events(log, "spawned"))  # type: ignore[call-overload]
    assert stop_process(worker) == 0  # type: ignore[arg-type]
    wait_for(lambda: not alive(child), timeout=60)  # it sleeps 300 s


# -- a poison pill, and its neighbours --------------------------------------------------------


def test_a_job_that_kills_its_worker_is_dead_lettered_and_its_neighbours_complete(
    redis_url: str, tmp_path: Path, log: Path
) -> None:
    """A job that kills its worker process every time reaches the dead-letter queue after
    max_retries + 1 crashes; the jobs that ran beside it when it did (found by an adversarial
    run: dead-lettered with them, out of retries) keep their retries and complete."""
    settings = e2e_settings(redis_url, count=4, max_retries=2)
    engine = Engine.from_settings(settings)
    (poison,) = enqueue(engine, 1, log, poison=True)
    others = enqueue(engine, 30, log, sleep_ms=100)
    worker = start(settings, tmp_path)
    wait_for(lambda: settled(settings, engine, 31), timeout=60)
    stop_process(worker)  # type: ignore[arg-type]
    dead = [json.loads(e) for e in engine.client.lrange(engine.keys.queue("high").dead, 0, -1)]
    assert [d["id"] for d in dead] == [poison]
    assert dead[0]["crashes"] == 3 and "crashed its worker 3 times" in dead[0]["last_error"]
    assert ids(log, "start")[poison] == 3, "exactly max_retries + 1 runs"
    assert set(others) <= set(ids(log, "end"))
