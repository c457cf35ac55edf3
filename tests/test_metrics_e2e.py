"""A real `jobqueue --role=all` process: its /metrics carries every series of the design, and
/readyz follows Redis going away and coming back while the process lives on."""

from __future__ import annotations

import re
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from jobqueue.engine import Engine
from tests.conftest import make_settings
from tests.helpers import DESIGN_SERIES, settled, spawn, stop_process, wait_for, write_config
from tests.redis_server import RedisServer, free_port

pytestmark = pytest.mark.e2e


def http_status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=3) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return 0


def scrape(base: str) -> str:
    with urllib.request.urlopen(f"{base}/metrics", timeout=3) as response:
        return str(response.read().decode())


@pytest.fixture
def own_redis() -> Iterator[RedisServer]:
    server = RedisServer().start()
    yield server
    server.cleanup()


def test_metrics_and_readiness_of_a_running_process(own_redis: RedisServer, tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    for name in ("a.pdf", "b.txt", "c.log", "fail-this.txt"):
        (data / name).write_bytes(b"x" * 2048)
    port = free_port()
    settings = make_settings(
        own_redis.url,
        # shutdown_grace 1s: the stop below waits 15 s, and the default grace (30 s) lets a
        # worker still busy after the Redis restart take longer than that by design.
        worker={
            "count": 2,
            "max_retries": 0,
            "heartbeat_ttl": "2s",
            "claim_timeout": "200ms",
            "shutdown_grace": "1s",
        },
        producer={"scan_dir": str(data)},
        observability={
            "metrics_port": port,
            "metrics_host": "127.0.0.1",
            "queue_sample_interval": "200ms",
        },
    )
    config = write_config(tmp_path / "config.yaml", settings)
    engine = Engine.from_settings(settings)
    proc = spawn("all", config)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: http_status(f"{base}/healthz") == 200)
        wait_for(lambda: settled(settings, engine, 4))
        text = scrape(base)
        missing = [
            name for name in DESIGN_SERIES if f"# TYPE {name.removesuffix('_total')}" not in text
        ]
        assert missing == []
        assert 'jobqueue_jobs_completed_total{queue="low"} 2.0' in text
        assert 'jobqueue_jobs_dead_letter_total{queue="low"} 1.0' in text
        assert 'jobqueue_reaper_recovered_total{queue="high"} 0.0' in text, "declared early"
        # the worker processes' breakers, summed per state over live processes
        assert re.search(r'jobqueue_circuit_breaker_state\{state="closed"\} [1-9]', text)
        assert 'jobqueue_circuit_breaker_state{state="open"} 0.0' in text
        assert wait_for(lambda: 'depth{queue="low",state="dead_letter"} 1.0' in scrape(base))
        assert "# TYPE jobqueue_build_info gauge" in text and "process_cpu_seconds_total" in text
        assert http_status(f"{base}/readyz") == 200

        own_redis.stop()
        wait_for(lambda: http_status(f"{base}/readyz") == 503, timeout=30)
        assert http_status(f"{base}/healthz") == 200
        assert proc.poll() is None, "the process outlives its Redis"

        own_redis.start()
        wait_for(lambda: http_status(f"{base}/readyz") == 200, timeout=30)
    finally:
        code = stop_process(proc)
    assert code == 0
