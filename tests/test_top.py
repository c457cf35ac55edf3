"""``admin top`` headless: frames rendered to strings, the loop driven by scripted keys."""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
import yaml
from rich.console import Console
from typer.testing import CliRunner

from jobqueue.admin.commands import Overview, WorkerRow, overview
from jobqueue.admin.top import Dashboard, KeyReader, run_top, sample_into, sparkline
from jobqueue.cli import app
from jobqueue.config import Settings
from jobqueue.engine import Engine, QueueCounts, Stats
from jobqueue.job import new_job
from tests.drain import draining
from tests.helpers import wait_for


def sample(pending: int, completed: int, retried: int = 0, dead: int = 0) -> Overview:
    counts = QueueCounts(
        pending=pending,
        completed=completed,
        dead_letter=dead,
        counters={"completed": completed, "retried": retried, "dead": dead},
    )
    row = WorkerRow("h:1:0:x:0", "h", 1, "2024-05-01", "0", ["high"], "open", 2, 0.5, True)
    return Overview(Stats({"high": counts}, workers=1, registered=1), [row])


class ScriptedKeys:
    """Presses ``keys`` one per refresh, then raises what ``then`` says."""

    def __init__(self, keys: list[str | None], then: type[BaseException] | None = None):
        self.keys = list(keys)
        self.then = then
        self.waits: list[float] = []

    def __enter__(self) -> ScriptedKeys:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def wait(self, timeout: float) -> str | None:
        self.waits.append(timeout)
        if not self.keys and self.then is not None:
            raise self.then
        return self.keys.pop(0) if self.keys else "q"


def test_sparkline_scales_to_the_largest_value() -> None:
    assert sparkline([]) == ""
    assert sparkline([0, 0]) == "▁▁"
    assert sparkline([0, 4, 8]) == "▁▅█"
    assert len(sparkline(range(100), width=10)) == 10


def test_frame_shows_depths_rates_dlq_workers_and_breakers() -> None:
    dashboard = Dashboard("jobqueue top", refresh=1.0)
    dashboard.update(sample(pending=10, completed=100), at=10.0)
    first = dashboard.text()
    assert "done/s" in first and "throughput - jobs/s" in first
    dashboard.update(sample(pending=4, completed=150, retried=2, dead=1), at=12.0)
    frame = dashboard.text()
    assert "25.0" in frame and "1.5" in frame  # 50 done and 3 failures over 2 s
    assert "throughput 25.0 jobs/s" in frame and "DLQ 1" in frame
    assert "breakers: open 1" in frame and "h:1:0:x:0" in frame
    assert sparkline([10, 4]) in frame
    assert "refresh 1s" in frame


def test_frame_shows_a_redis_failure_and_keeps_the_last_sample() -> None:
    dashboard = Dashboard()
    dashboard.update(sample(3, 0), at=1.0)

    def broken() -> Overview:
        raise redis.ConnectionError("Connection refused")

    sample_into(dashboard, broken)
    frame = dashboard.text()
    assert "redis: Connection refused" in frame and "high" in frame


def test_run_top_quits_on_q_and_on_ctrl_c() -> None:
    console = Console(file=io.StringIO(), width=120)
    keys = ScriptedKeys([None, "x"])
    frames = run_top(lambda: sample(1, 1), 0.25, console=console, keys=keys)
    assert frames == 3 and keys.waits == [0.25, 0.25, 0.25]
    assert "queues" in console.file.getvalue()  # type: ignore[attr-defined]
    interrupted = ScriptedKeys([None], then=KeyboardInterrupt)
    assert run_top(lambda: sample(1, 1), 0.1, console=console, keys=interrupted) == 2


def test_key_reader_reads_single_keys_from_a_terminal() -> None:
    controller, terminal = os.openpty()
    with os.fdopen(terminal, "r") as stream, KeyReader(stream) as keys:
        os.write(controller, b"q")
        assert keys.wait(5) == "q"
        assert keys.wait(0.01) is None
    os.close(controller)
    assert KeyReader(io.StringIO()).__enter__().wait(0.01) is None  # not a terminal


@pytest.fixture
def live_settings(settings: Settings) -> Settings:
    return settings


@pytest.fixture
def eng(live_settings: Settings) -> Iterator[Engine]:
    engine = Engine.from_settings(live_settings)
    yield engine
    engine.close()


def test_dashboard_over_real_redis_sees_throughput(live_settings: Settings, eng: Engine) -> None:
    dashboard = Dashboard()
    with draining(eng, ["high", "low"]) as drain:
        sample_into(dashboard, lambda: overview(eng, live_settings, with_jobs=True))
        eng.enqueue_many([(new_job(f"/{i}", "high"), "high") for i in range(200)])
        wait_for(lambda: drain.acked == 200)
        sample_into(dashboard, lambda: overview(eng, live_settings, with_jobs=True))
        frame = dashboard.text()
    assert dashboard.rates["high"].done is not None and dashboard.rates["high"].done > 0
    assert "200" in frame and "testhost" in frame and "closed 1" in frame


def test_cli_top_once_prints_one_frame(
    live_settings: Settings, eng: Engine, tmp_path: Path
) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(live_settings.model_dump(mode="json")))
    eng.enqueue(new_job("/a", "low"), "low")
    result = CliRunner().invoke(
        app, ["admin", "top", "--once", "--refresh", "50ms", "--config", str(path)]
    )
    assert result.exit_code == 0, result.output
    assert "queues" in result.stdout and "low" in result.stdout and "throughput" in result.stdout
    bad = CliRunner().invoke(app, ["admin", "top", "--refresh", "0s", "--config", str(path)])
    assert bad.exit_code == 2 and "--refresh" in bad.stderr
