"""Every admin command through the CLI (both spellings) against a real redis-server."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import yaml
from typer.testing import CliRunner, Result

from jobqueue.admin import commands
from jobqueue.admin.bench import BenchControl, BenchOptions, bench, nearest_rank
from jobqueue.cli import app
from jobqueue.config import Settings
from jobqueue.engine import Engine, Inspector, RetryPolicy
from jobqueue.job import new_job
from tests.conftest import make_settings
from tests.drain import draining
from tests.redis_server import free_port

NS = "jqadmin"
A = "hosta:100:0:aaa"
B = "hostb:200:0:bbb"
DEAD_NOW = RetryPolicy(max_retries=0, base=0.0, cap=0.0)


@pytest.fixture
def settings(redis_url: str) -> Settings:
    return make_settings(redis_url, redis={"namespace": NS})


@pytest.fixture
def cfg(tmp_path: Path, settings: Settings) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(settings.model_dump(mode="json")))
    return path


@pytest.fixture
def eng(settings: Settings) -> Iterator[Engine]:
    engine = Engine.from_settings(settings)
    yield engine
    engine.close()


def cli(cfg: Path, *args: str) -> Result:
    return CliRunner().invoke(app, [*args, "--config", str(cfg)])


def go(cfg: Path, *args: str) -> Result:
    return CliRunner().invoke(app, ["--role=admin", "--config", str(cfg), *args])


def doc(result: Result) -> Any:
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)  # exactly one JSON document, nothing else


def refused(result: Result, *words: str) -> None:
    assert result.exit_code == 2, result.output
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for word in words:
        assert word in lines[0]


def register(engine: Engine, worker_id: str, breaker: str, ttl: float = 30) -> None:
    host, pid = worker_id.split(":")[:2]
    info = {"host": host, "pid": int(pid), "started": "2024-05-01T10:00:00+00:00"}
    info |= {"slots": 4, "breaker": breaker}
    engine.registry.register(worker_id, info, ["high", "low"], ttl)


def bury(engine: Engine, queue: str, filepath: str) -> None:
    register(engine, A, "closed")
    engine.enqueue(new_job(filepath, queue), queue)
    claimed = engine.decode(queue, engine.claim(queue, A, 1)[0])  # type: ignore[index]
    assert engine.fail(claimed, A, "boom", DEAD_NOW) == "dead"


def bury_garbage(engine: Engine, raw_redis: redis.Redis, queue: str) -> None:
    register(engine, A, "closed")
    raw_redis.lpush(engine.keys.queue(queue).pending, b"\xffnot a job")
    claimed = engine.decode(queue, engine.claim(queue, A, 1)[0])  # type: ignore[index]
    assert engine.bury(claimed, A, "malformed") == "dead"


# -- stats --------------------------------------------------------------------------------


def test_stats_json_counts_queues_workers_and_breakers(cfg: Path, eng: Engine) -> None:
    for i in range(3):
        eng.enqueue(new_job(f"/h{i}", "high"), "high")
    eng.enqueue(new_job("/l", "low"), "low")
    eng.enqueue(new_job("/later", "low"), "low", delay=60)
    register(eng, A, "open")
    register(eng, "hosta:100:1:aab", "open")
    register(eng, B, "closed")
    eng.claim("high", A, 1)
    data = doc(cli(cfg, "admin", "stats", "--json"))
    assert data["queues"]["high"] | {"counters": None} == {
        "pending": 2,
        "scheduled": 0,
        "reserved": 1,
        "running": 0,
        "processing": 1,
        "completed": 0,
        "dead_letter": 0,
        "counters": None,
    }
    assert data["queues"]["low"]["scheduled"] == 1
    assert data["workers"] == 3
    assert data["breakers"] == {"open": 2, "closed": 1}  # one breaker per worker process
    assert data["completed"] == 0 and data["dead_letter"] == 0
    assert doc(go(cfg, "--admin-cmd=stats", "--json")) == data
    assert doc(CliRunner().invoke(app, ["--json", "admin", "stats", "-c", str(cfg)])) == data


def test_stats_table_shows_queues_and_breakers(cfg: Path, eng: Engine) -> None:
    register(eng, B, "half-open")
    result = cli(cfg, "admin", "stats")
    assert result.exit_code == 0, result.output
    assert "high" in result.stdout and "low" in result.stdout
    assert "breakers: half-open 1" in result.stdout


# -- peek ---------------------------------------------------------------------------------


def test_peek_pending_in_claim_order_table_truncates_json_does_not(cfg: Path, eng: Engine) -> None:
    long_path = "/data/" + "x" * 400
    jobs = [new_job(long_path, "high"), new_job("/b", "high"), new_job("/c", "high")]
    for job in jobs:
        eng.enqueue(job, "high")
    data = doc(cli(cfg, "admin", "peek", "--queue", "high", "--n", "2", "--json"))
    assert data["kind"] == "pending" and data["count"] == 2
    assert [e["payload"]["id"] for e in data["entries"]] == [jobs[0].id, jobs[1].id]
    assert data["entries"][0]["payload"]["filepath"] == long_path  # whole in --json
    table = cli(cfg, "admin", "peek", "--queue", "high", "--n", "2")
    assert table.exit_code == 0
    assert long_path not in table.stdout and "…" in table.stdout
    assert doc(go(cfg, "--admin-cmd=peek", "--queue", "high", "--n", "2", "--json")) == data


def test_peek_scheduled_completed_and_dead_letter(
    cfg: Path, eng: Engine, raw_redis: redis.Redis
) -> None:
    eng.enqueue(new_job("/soon", "low"), "low", delay=30)
    eng.enqueue(new_job("/done", "high"), "high")
    register(eng, A, "closed")
    claimed = eng.decode("high", eng.claim("high", A, 1)[0])  # type: ignore[index]
    eng.ack("high", A, [claimed])
    bury(eng, "low", "/dead")
    bury_garbage(eng, raw_redis, "high")

    scheduled = doc(cli(cfg, "admin", "peek", "--queue", "scheduled", "--json"))
    (entry,) = scheduled["entries"]
    assert entry["priority"] == "low" and entry["due_ms"] > time.time() * 1000 + 20_000
    assert entry["due"].endswith("+00:00")

    completed = doc(cli(cfg, "admin", "peek", "--queue", "completed", "--json"))
    assert [e["payload"]["filepath"] for e in completed["entries"]] == ["/done"]

    dead = doc(cli(cfg, "admin", "peek", "--queue", "dlq", "--json"))
    assert doc(cli(cfg, "admin", "peek", "--queue", "dead_letter", "--json")) == dead | {
        "queue": "dead_letter"
    }
    by_queue = {e["queue"]: e["payload"] for e in dead["entries"]}
    assert by_queue["low"]["filepath"] == "/dead" and "boom" in by_queue["low"]["last_error"]
    assert by_queue["high"]["dead_reason"] == "malformed"
    table = cli(cfg, "admin", "peek", "--queue", "dlq")
    assert table.exit_code == 0 and "boom" in table.stdout


def test_peek_refuses_unknown_queue_and_go_style_needs_queue(cfg: Path) -> None:
    refused(cli(cfg, "admin", "peek", "--queue", "nope"), "nope", "dlq")
    refused(go(cfg, "--admin-cmd=peek"), "--queue")
    refused(go(cfg, "--admin-cmd=frobnicate"), "one of")


# -- purges -------------------------------------------------------------------------------


def test_purge_dlq_refuses_without_yes_then_purges(cfg: Path, eng: Engine) -> None:
    bury(eng, "high", "/a")
    bury(eng, "low", "/b")
    refused(cli(cfg, "admin", "purge-dlq"), "--yes")
    refused(go(cfg, "--admin-cmd=purge-dlq"), "--yes")
    assert commands.overview(eng, Settings(redis={"namespace": NS})).stats.dead_letter == 2
    result = cli(cfg, "admin", "purge-dlq", "--yes")
    assert result.exit_code == 0
    assert result.stdout.strip() == "purged 2 dead-letter jobs (high: 1, low: 1)"
    bury(eng, "high", "/c")
    again = go(cfg, "--admin-cmd=purge-dlq", "--yes")
    assert again.stdout.strip() == "purged 1 dead-letter jobs (high: 1, low: 0)"


def test_purge_dlq_dry_run_counts_and_queue_picks_one(cfg: Path, eng: Engine) -> None:
    bury(eng, "high", "/a")
    bury(eng, "high", "/b")
    bury(eng, "low", "/c")
    dry = cli(cfg, "admin", "purge-dlq", "--dry-run")  # no --yes needed to look
    assert dry.exit_code == 0, dry.output
    assert dry.stdout.strip() == (
        "would purge 3 dead-letter jobs (high: 2, low: 1); add --yes to do it"
    )
    assert doc(cli(cfg, "admin", "purge-dlq", "--queue", "high", "--dry-run", "--json")) == {
        "dry_run": True,
        "purged": 2,
        "queues": {"high": 2},
    }
    assert _dead(eng) == {"high": 2, "low": 1}
    refused(cli(cfg, "admin", "purge-dlq", "--queue", "nope", "--yes"), "nope")
    purged = doc(cli(cfg, "admin", "purge-dlq", "--queue", "low", "--yes", "--json"))
    assert purged == {"dry_run": False, "purged": 1, "queues": {"low": 1}}
    assert _dead(eng) == {"high": 2, "low": 0}
    # --n: at most what a dry run counted, oldest first, queues in priority order.
    assert doc(cli(cfg, "admin", "purge-dlq", "--n", "1", "--dry-run", "--json"))["queues"] == {
        "high": 1,
        "low": 0,
    }
    one = doc(cli(cfg, "admin", "purge-dlq", "--n", "1", "--yes", "--json"))
    assert one["queues"] == {"high": 1, "low": 0}
    (left,) = Inspector(eng).peek_dead("high", 10)
    assert json.loads(left.raw)["filepath"] == "/b", "the oldest went"
    refused(cli(cfg, "admin", "purge-dlq", "--n", "0", "--yes"), "--n must be at least 1")
    assert doc(go(cfg, "--admin-cmd=purge-dlq", "--queue", "high", "--yes", "--json"))[
        "queues"
    ] == {"high": 1}


def _dead(eng: Engine) -> dict[str, int]:
    stats = commands.overview(eng, Settings(redis={"namespace": NS})).stats  # type: ignore[arg-type]
    return {p: q.dead_letter for p, q in stats.queues.items()}


@pytest.mark.parametrize("flags", [[], ["--dev"], ["--yes"]])
def test_purge_all_refuses_without_both_flags(cfg: Path, eng: Engine, flags: list[str]) -> None:
    eng.enqueue(new_job("/a", "high"), "high")
    refused(cli(cfg, "admin", "purge-all", *flags), "--dev", "--yes", "development")
    refused(go(cfg, "--admin-cmd=purge-all", *flags), "development")
    assert eng.pending_length("high") == 1


def test_purge_all_deletes_only_this_namespace(
    cfg: Path, eng: Engine, raw_redis: redis.Redis, redis_url: str
) -> None:
    other = Engine.from_settings(make_settings(redis_url, redis={"namespace": "other"}))
    other.enqueue(new_job("/keep", "high"), "high")
    eng.enqueue(new_job("/a", "high"), "high")
    register(eng, A, "closed")
    raw_redis.set("unrelated", b"1")
    dry = doc(cli(cfg, "admin", "purge-all", "--dry-run", "--json"))
    assert dry["dry_run"] is True and dry["deleted"] >= 3 and dry["namespace"] == NS
    assert eng.pending_length("high") == 1
    assert "would delete" in cli(cfg, "admin", "purge-all", "--dry-run").stdout
    result = cli(cfg, "admin", "purge-all", "--dev", "--yes")
    assert result.exit_code == 0, result.output
    assert f"deleted {dry['deleted']} keys" in result.stdout
    assert result.stdout.startswith("deleted ") and "'jqadmin'" in result.stdout
    assert eng.pending_length("high") == 0 and eng.registry.workers() == {}
    assert other.pending_length("high") == 1 and raw_redis.get("unrelated") == b"1"
    eng.enqueue(new_job("/b", "high"), "high")
    done = doc(go(cfg, "--admin-cmd=purge-all", "--dev", "--yes", "--json"))
    assert done["dry_run"] is False and done["deleted"] >= 1
    assert eng.pending_length("high") == 0
    other.close()


# -- requeue ------------------------------------------------------------------------------


def test_requeue_dlq_moves_oldest_first_with_retries_reset(
    cfg: Path, eng: Engine, raw_redis: redis.Redis
) -> None:
    for name in ("/1", "/2", "/3"):
        bury(eng, "high", name)
    bury_garbage(eng, raw_redis, "high")
    bury(eng, "low", "/low")
    refused(cli(cfg, "admin", "requeue-dlq", "--n", "1"), "--yes")
    refused(cli(cfg, "admin", "requeue-dlq", "--n", "1", "--all", "--yes"), "--all")
    refused(cli(cfg, "admin", "requeue-dlq", "--queue", "nope", "--yes"), "nope")

    one = doc(cli(cfg, "admin", "requeue-dlq", "--n", "1", "--yes", "--json"))
    assert one["moved"] == 1 and one["skipped"] == 0 and one["remaining"] == 4
    assert one["dry_run"] is False
    (job,) = (json.loads(r) for r in raw_redis.lrange(eng.keys.queue("high").pending, 0, -1))
    assert job["filepath"] == "/1" and job["retries"] == 0 and job["last_error"] == ""

    only_low = cli(cfg, "admin", "requeue-dlq", "--queue", "low", "--all", "--yes")
    assert only_low.exit_code == 0
    assert "requeued 1 dead jobs" in only_low.stdout and "0 left" in only_low.stdout
    assert eng.pending_length("low") == 1

    planned = doc(cli(cfg, "admin", "requeue-dlq", "--n", "1", "--dry-run", "--json"))
    assert planned["dry_run"] is True and planned["moved"] == 1 and planned["remaining"] == 2
    assert "would requeue 3 dead jobs" in cli(cfg, "admin", "requeue-dlq", "--dry-run").stdout
    assert _dead(eng)["high"] == 3  # a dry run moves nothing

    rest = doc(go(cfg, "--admin-cmd=requeue-dlq", "--all", "--yes", "--json"))
    assert rest["queues"]["high"] == {"moved": 2, "skipped": 1, "remaining": 1}
    assert eng.pending_length("high") == 3


# -- census and workers -------------------------------------------------------------------


def test_stats_keys_counts_this_namespace(cfg: Path, eng: Engine, raw_redis: redis.Redis) -> None:
    eng.enqueue(new_job("/a", "high"), "high")
    eng.enqueue(new_job("/b", "low"), "low", delay=60)
    register(eng, A, "closed")
    raw_redis.set("unrelated", b"1")
    data = doc(cli(cfg, "admin", "stats-keys", "--json"))
    assert data["namespace"] == NS
    assert data["by_kind"]["pending"] == 1 and data["by_kind"]["scheduled"] == 1
    assert data["by_type"]["list"] == 1 and data["by_type"]["zset"] == 1
    assert data["keys"] == sum(data["by_type"].values())
    assert data["memory_sampled_keys"] == data["keys"] and data["memory_estimated_bytes"] > 0
    table = cli(cfg, "admin", "stats-keys")
    assert table.exit_code == 0 and "pending" in table.stdout
    assert doc(go(cfg, "--admin-cmd=stats-keys", "--json"))["keys"] == data["keys"]


def test_workers_lists_jobs_heartbeat_age_and_expired(
    cfg: Path, eng: Engine, redis_url: str
) -> None:
    register(eng, A, "open")
    register(eng, B, "closed", ttl=0.001)
    for i in range(3):
        eng.enqueue(new_job(f"/{i}", "high"), "high")
    eng.enqueue(new_job("/l", "low"), "low")
    eng.claim("high", A, 2)
    eng.claim("low", A, 1)
    data = doc(cli(cfg, "admin", "workers", "--json"))
    rows = {row["id"]: row for row in data["workers"]}
    assert (rows[A]["reserved"], rows[A]["running"], rows[A]["alive"]) == (3, 0, True)
    assert rows[A]["host"] == "hosta" and rows[A]["pid"] == 100 and rows[A]["breaker"] == "open"
    assert 0 <= rows[A]["heartbeat_age_seconds"] < 5
    assert rows[B]["alive"] is False and rows[B]["heartbeat_age_seconds"] is None
    table = cli(cfg, "admin", "workers")
    assert table.exit_code == 0 and "1 live, 1 expired" in table.stdout
    again = doc(go(cfg, "--admin-cmd=workers", "--json"))["workers"]
    assert [(r["id"], r["reserved"]) for r in again] == [(A, 3), (B, 0)]


# -- failures -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ["admin", "stats"],
        ["admin", "peek", "--queue", "high"],
        ["admin", "workers", "--json"],
        ["admin", "stats-keys"],
        ["admin", "purge-dlq", "--yes"],
        ["admin", "requeue-dlq", "--all", "--yes"],
        ["admin", "bench", "--count", "1"],
        ["admin", "top", "--once"],
    ],
)
def test_unreachable_redis_is_one_line_exit_1(tmp_path: Path, args: list[str]) -> None:
    settings = make_settings(
        f"redis://127.0.0.1:{free_port()}/0", redis={"dial_timeout": 0.5, "max_retries": 0}
    )
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(settings.model_dump(mode="json")))
    result = cli(path, *args)
    assert result.exit_code == 1, result.output
    assert result.stdout == ""
    assert result.stderr.strip().startswith("error: cannot reach Redis")
    assert len(result.stderr.strip().splitlines()) == 1


def test_refusals_do_not_need_redis(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({"redis": {"url": f"redis://127.0.0.1:{free_port()}/0"}}))
    refused(cli(path, "admin", "purge-all", "--yes"), "--dev")
    refused(cli(path, "admin", "purge-dlq"), "--yes")
    refused(cli(path, "admin", "requeue-dlq", "--all"), "--yes")


def test_invalid_config_is_exit_2(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("worker: {heartbeat_tll: 3s}\n")
    result = cli(path, "admin", "workers")
    assert result.exit_code == 2
    assert "worker.heartbeat_tll: unknown key" in result.stderr


# -- bench --------------------------------------------------------------------------------


def test_bench_reports_throughput_and_latency(cfg: Path, eng: Engine) -> None:
    with draining(eng, ["high", "low"]) as drain:
        data = doc(cli(cfg, "admin", "bench", "--count", "400", "--priority", "high", "--json"))
    assert drain.acked == 400
    assert data["completed"] == 400 and data["latency_samples"] == 400
    assert data["timed_out"] is False and data["dead"] == 0 and data["live_workers"] == 1
    latency = data["latency_ms"]
    assert 0 <= latency["p50"] <= latency["p95"] <= latency["p99"] <= latency["max"]
    assert data["throughput_per_second"] > 0 and 0 < data["resolution_ms"] < 1000


def test_bench_paces_enqueues_and_pads_payloads(cfg: Path, eng: Engine) -> None:
    with draining(eng, ["low"]):
        result = cli(
            cfg, "admin", "bench", "--count", "40", "--rate", "400", "--payload-size", "2000"
        )
    assert result.exit_code == 0, result.output
    assert "throughput" in result.stdout and "latency p99" in result.stdout
    with draining(eng, ["low"]):
        data = doc(go(cfg, "--admin-cmd=bench", "--n", "20", "--json"))
    assert data["count"] == 20 and data["completed"] == 20


def test_bench_rate_and_payload_size_are_honoured(settings: Settings, eng: Engine) -> None:
    options = BenchOptions(count=30, rate=300, priority="low", payload_size=1500)
    with draining(eng, ["low"]):
        report = bench(eng, settings, options)
    assert report.enqueue_seconds >= 29 / 300
    assert 1450 <= report.payload_bytes <= 1550
    assert report.completed == 30


def test_bench_counts_dead_jobs_and_finishes(settings: Settings, eng: Engine) -> None:
    with draining(eng, ["high"], fail_marker="bench_run"):
        report = bench(eng, settings, BenchOptions(count=10, priority="high", timeout=10))
    assert report.dead == 10 and report.completed == 0 and not report.timed_out
    assert report.percentiles_ms()["p50"] is None


def test_bench_times_out_with_exit_1_still_reports_and_cleans_up(cfg: Path, eng: Engine) -> None:
    result = cli(cfg, "admin", "bench", "--count", "3", "--timeout", "150ms", "--json")
    assert result.exit_code == 1
    data = json.loads(result.stdout)
    assert data["timed_out"] is True and data["enqueued"] == 3 and data["completed"] == 0
    assert data["withdrawn"] == 3 and eng.pending_length("low") == 0
    records = list(eng.client.scan_iter(match=eng.keys.queue("low").job("*")))
    assert records == [], "withdrawn jobs leave no record behind"
    assert "no live worker" in result.stderr and "bench timed out" in result.stderr
    assert "3 unclaimed jobs taken back" in result.stderr


def test_bench_refuses_bad_options(cfg: Path) -> None:
    refused(cli(cfg, "admin", "bench", "--priority", "urgent"), "urgent")
    refused(cli(cfg, "admin", "bench", "--payload-size", "5000000"), "max_payload_bytes")
    refused(cli(cfg, "admin", "bench", "--timeout", "soon"), "--timeout")


def test_nearest_rank_percentiles() -> None:
    values = [float(v) for v in range(1, 101)]
    assert nearest_rank(values, 50) == 50 and nearest_rank(values, 99) == 99
    assert nearest_rank([7.0], 95) == 7.0


def test_peek_survives_a_payload_nested_deeper_than_the_json_parser_goes(
    cfg: Path, eng: Engine
) -> None:
    """Found by the bad-input scenario (tests/chaos): a foreign producer's ``[[[...]]]``
    100,000 deep raised RecursionError out of every reader of the queue."""
    deep = b"[" * 100_000 + b"]" * 100_000
    eng.client.lpush(eng.keys.queue("high").pending, deep)
    data = doc(cli(cfg, "admin", "peek", "--queue", "high", "--json"))
    assert data["entries"][0]["payload"] == deep.decode()
    table = cli(cfg, "admin", "peek", "--queue", "high")
    assert table.exit_code == 0 and "[[[" in table.stdout
    assert cli(cfg, "admin", "stats").exit_code == 0


def test_requeue_dlq_without_n_or_all_says_what_moved_and_what_remains(
    cfg: Path, eng: Engine
) -> None:
    for i in range(12):
        bury(eng, "high", f"/{i}")
    result = cli(cfg, "admin", "requeue-dlq", "--yes")
    assert result.exit_code == 0, result.output
    assert "requeued 10 dead jobs" in result.stdout and "2 left in dead-letter" in result.stdout
    assert result.stderr.strip() == (
        "note: 2 dead jobs remain (10 at a time by default): --n N or --all"
    )
    assert cli(cfg, "admin", "requeue-dlq", "--all", "--yes").stderr == ""


# -- enqueue ------------------------------------------------------------------------------


def test_enqueue_json(cfg: Path, eng: Engine, tmp_path: Path) -> None:
    files = [tmp_path / "a.pdf", tmp_path / "b.txt"]
    for path in files:
        path.write_text("x")
    data = doc(cli(cfg, "admin", "enqueue", *map(str, files), "--json"))
    assert data["enqueued"] == 2 and data["seen"] == 2 and data["skipped_error"] == 0
    assert eng.pending_length("high") == 1 and eng.pending_length("low") == 1


# -- reaper: workers hint, one-shot reap -----------------------------------------------------


def test_workers_hint_when_no_reaper_and_reap_once_recovers(cfg: Path, eng: Engine) -> None:
    register(eng, A, "closed")
    eng.enqueue(new_job("/held", "high"), "high")
    claimed = eng.claim("high", A, 1)
    eng.start("high", A, claimed)  # type: ignore[arg-type]
    register(eng, B, "closed", ttl=0.001)  # B is expired and holds nothing
    expire(eng, A)
    listed = cli(cfg, "admin", "workers")
    assert listed.exit_code == 0 and "0 live, 2 expired" in listed.stdout
    assert "no reaper has swept lately" in listed.stderr and "jobqueue admin reap" in listed.stderr
    assert doc(cli(cfg, "admin", "workers", "--json"))["reaper"] is None

    reaped = doc(cli(cfg, "admin", "reap", "--json"))
    assert reaped["expired_workers"] == [A, B] and reaped["deregistered"] == [A, B]
    assert reaped["recovered_jobs"] == 1 and reaped["still_expired"] == []
    assert eng.pending_length("high") == 1 and eng.registry.workers() == {}

    register(eng, B, "closed", ttl=0.001)
    after = cli(cfg, "admin", "workers", "--json")
    assert after.stderr == ""  # a reaper swept lately: no hint
    assert doc(after)["reaper"]["swept_ago_seconds"] >= 0
    assert "reaped 1 expired workers" in go(cfg, "--admin-cmd=reap").stdout


def expire(engine: Engine, worker_id: str) -> None:
    """What a SIGKILLed worker leaves: its heartbeat and its leases gone."""
    engine.client.delete(engine.keys.heartbeat(worker_id))
    for queue in ("high", "low"):
        engine.client.delete(engine.keys.queue(queue).lease(worker_id))


# -- bench: failure and cleanup ------------------------------------------------------------


def test_bench_with_every_job_dead_lettered_exits_1_and_says_so(cfg: Path, eng: Engine) -> None:
    with draining(eng, ["high"], fail_marker="bench_run"):
        result = cli(cfg, "admin", "bench", "--count", "20", "--priority", "high", "--json")
    assert result.exit_code == 1
    data = json.loads(result.stdout)
    assert data["dead"] == 20 and data["completed"] == 0
    assert result.stderr.strip() == (
        "error: bench failed: 20 of 20 jobs were dead-lettered, 0 of 20 jobs completed "
        "(see jobqueue admin peek --queue dlq)"
    )


def test_bench_interrupted_takes_its_unclaimed_jobs_back(settings: Settings, eng: Engine) -> None:
    eng.enqueue(new_job("/real-work", "low"), "low")
    eng.enqueue(new_job("/real-later", "low"), "low", delay=60)

    def ctrl_c(_seconds: float) -> None:
        raise KeyboardInterrupt

    report = bench(eng, settings, BenchOptions(count=50, priority="low"), sleep=ctrl_c)
    assert report.interrupted and report.enqueued == 50 and report.withdrawn == 50
    assert report.problem() == (
        "bench interrupted: 0 of 50 jobs completed; 50 unclaimed jobs taken back out of the queue"
    )
    pending = [e.raw for e in Inspector(eng).peek_pending("low", 10)]
    assert len(pending) == 1 and b"/real-work" in pending[0]
    assert Inspector(eng).stats({"low": "low"}).queues["low"].scheduled == 1


def test_chosen_jobs_are_requeued_deleted_or_run_now_by_id(cfg: Path, eng: Engine) -> None:
    """The row actions of the TUI and the dashboard, from the command line: by id, one
    script call per queue, records following the jobs; unknown ids reported."""
    eng.registry.register("w", {}, ["low"], ttl=30)
    dead = [new_job(f"/dead/{i}", "low") for i in range(3)]
    eng.enqueue_many([(job, "low") for job in dead])
    for raw in eng.claim("low", "w", 3) or []:
        eng.bury(eng.decode("low", raw), "w", "broken")
    later = new_job("/later", "low")
    eng.enqueue(later, "low", delay=3600)
    requeued = cli(cfg, "admin", "requeue-job", dead[0].id, "nope", "--json")
    assert json.loads(requeued.stdout) == {"action": "requeue", "done": 1, "missing": ["nope"]}
    deleted = cli(cfg, "admin", "delete-job", dead[1].id)
    assert deleted.exit_code == 0 and "deleted 1 jobs" in deleted.stdout
    assert cli(cfg, "admin", "run-now", later.id).exit_code == 0
    states = {job.id: eng.record(job.id, ["low"]) for job in (*dead, later)}
    assert states[dead[0].id].state == "pending"  # type: ignore[union-attr]
    assert states[dead[1].id] is None, "a deleted job's record goes with it"
    assert states[dead[2].id].state == "dead"  # type: ignore[union-attr]
    assert states[later.id].state == "pending"  # type: ignore[union-attr]
    assert eng.pending_length("low") == 2


# -- reads and controls for screens (the TUI) ------------------------------------------------


def test_screen_reads_server_info_held_ids_and_peek_with(settings: Settings, eng: Engine) -> None:
    info = commands.server_info(eng)
    assert info.version[0].isdigit() and info.used_memory > 0
    register(eng, A, "closed")
    job = new_job("/held", "high")
    eng.enqueue(job, "high")
    eng.claim("high", A, 1)
    (row,) = commands.worker_rows(eng, settings)
    assert commands.held_job_ids(eng, row) == [job.id]
    assert commands.peek_with(eng, settings, "high", 5).entries == []  # claimed: not pending
    assert (
        commands.peek(settings, "high", 5).as_json()
        == commands.peek_with(eng, settings, "high", 5).as_json()
    )


def test_bench_control_reports_progress_and_cancels_like_ctrl_c(
    settings: Settings, eng: Engine
) -> None:
    control = BenchControl()
    control.cancel.set()  # cancelled before the first poll: nothing waits for a worker
    report = bench(eng, settings, BenchOptions(count=50, rate=0), control=control)
    assert report.interrupted and report.withdrawn == report.enqueued
    assert Inspector(eng).stats({"low": "low"}).queues["low"].pending == 0
    with draining(eng, ["high", "low"]):
        done = BenchControl()
        report = bench(eng, settings, BenchOptions(count=30), control=done)
    assert report.completed == 30 and done.done == 30 and done.enqueued == 30
