"""``admin top`` headless: frames rendered to strings, the loop driven by scripted keys."""

from __future__ import annotations

import io
import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
import redis
import yaml
from rich.console import Console
from typer.testing import CliRunner

from jobqueue.admin.commands import Overview, WorkerRow, overview
from jobqueue.admin.keys import KeyReader
from jobqueue.admin.top import (
    Dashboard,
    print_frames,
    run_top,
    sample_into,
    sparkline,
)
from jobqueue.cli import app
from jobqueue.config import Settings
from jobqueue.engine import Engine, QueueCounts, Stats
from jobqueue.job import new_job
from tests.drain import draining
from tests.helpers import REPO, wait_for, write_config
from tests.states import WORKER, assert_whole, fill_states


def sample(pending: int, completed: int, retried: int = 0, dead: int = 0) -> Overview:
    counts = QueueCounts(
        pending=pending,
        completed=completed,
        dead_letter=dead,
        counters={"completed": completed, "retried": retried, "dead": dead},
    )
    row = WorkerRow("h:1:0:x:0", "h", 1, "2024-05-01", 4, ["high"], "open", 2, 1, 0.5, True)
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


def test_frame_shows_depths_rates_dead_letter_workers_and_breakers() -> None:
    dashboard = Dashboard("jobqueue top", refresh=1.0)
    dashboard.update(sample(pending=10, completed=100), at=10.0)
    first = dashboard.text()
    assert "completed/s" in first and "completed -/s" in first
    dashboard.update(sample(pending=4, completed=150, retried=2, dead=1), at=12.0)
    frame = dashboard.text()
    assert "25.0" in frame and "1.5" in frame  # 50 done and 3 failures over 2 s
    assert "completed 25.0/s" in frame and "dead_letter 1" in frame
    assert "breakers: open 1" in frame and "h:1:0:x:0" in frame
    assert sparkline([10, 4]) in frame
    assert "every 1s" in frame and "quits" not in frame  # no keys without a keyboard


def test_a_failed_sample_marks_the_frame_stale_with_the_last_good_time() -> None:
    dashboard = Dashboard()
    good = datetime(2024, 5, 1, 10, 0, 0).timestamp()
    dashboard.update(sample(3, 0), at=1.0, wall=good)
    dashboard.fail("Connection refused", wall=good + 35)
    frame = dashboard.text()
    assert "jobqueue · 10:00:00 · every 1s" in frame  # the clock stops at the last sample
    assert "STALE: figures from 10:00:00 (35s ago); redis: Connection refused" in frame
    assert "high" in frame and " 10h " in frame  # the worker's uptime as of that sample

    def broken() -> Overview:
        raise redis.ConnectionError("Connection refused")

    sample_into(dashboard, broken)
    assert "STALE: figures from 10:00:00" in dashboard.text()
    dashboard.update(sample(3, 0), at=2.0)
    assert "STALE" not in dashboard.text()


def many_workers(count: int) -> Overview:
    rows = [
        WorkerRow(
            f"host-{i:02}:4242:{i}:8d5724ab", "h", 4242, "", 4, ["high"], "closed", i, 0, 1.0, True
        )
        for i in range(count)
    ]
    return Overview(sample(1, 1).stats, rows)


def test_a_long_worker_list_fits_24_rows_says_what_is_hidden_and_scrolls() -> None:
    dashboard = Dashboard(hint="q quits")
    dashboard.update(many_workers(40), at=1.0)
    frame = dashboard.text(80, 24)
    assert len(frame.splitlines()) <= 24 and "host-00:" in frame
    shown = re.search(r"rows 1-(\d+) of 40 \(j/k scroll\)", frame)
    assert shown, frame
    last = int(shown.group(1))
    assert f"host-{last - 1:02}:" in frame and f"host-{last:02}:" not in frame
    dashboard.scroll(38)
    frame = dashboard.text(80, 24)
    assert f"rows {41 - last}-40 of 40" in frame and "host-39:" in frame  # clamped to the end
    assert "host-00:" not in frame


def test_run_top_quits_on_q_and_on_ctrl_c_and_scrolls_on_keys() -> None:
    console = Console(file=io.StringIO(), width=80, height=24, force_terminal=True)
    keys = ScriptedKeys([None, "j", "\x1b[B", " "])
    frames = run_top(lambda: many_workers(40), 60, console=console, keys=keys)
    assert frames == 5 and len(keys.waits) == 5
    out = console.file.getvalue()  # type: ignore[attr-defined]
    assert "rows 3-" in out and "quits" in out
    page = int(re.findall(r"rows 3-(\d+)", out)[-1]) - 2
    assert f"rows {3 + page}-" in out  # space moved one page down
    interrupted = ScriptedKeys([None], then=KeyboardInterrupt)
    assert run_top(lambda: sample(1, 1), 0.01, console=console, keys=interrupted) >= 1


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
    assert (
        "dead_letter" in result.stdout and "low" in result.stdout and "completed" in result.stdout
    )
    assert "quits" not in result.stdout
    bad = CliRunner().invoke(app, ["admin", "top", "--refresh", "0s", "--config", str(path)])
    assert bad.exit_code == 2 and "--refresh" in bad.stderr


def test_frame_at_80x24_over_real_redis_cuts_no_figure(
    live_settings: Settings, eng: Engine
) -> None:
    """Prefetched jobs are ``reserved``, not ``running``, in the queue and worker rows."""
    expected = fill_states(eng, dead=201)
    dashboard = Dashboard()
    sample_into(dashboard, lambda: overview(eng, live_settings, with_jobs=True))
    frame = dashboard.text(80, 24)
    assert len(frame.splitlines()) <= 24
    assert_whole(frame, [*expected.values(), "dead_letter 201", "1 live, 0 expired"])
    queue_row = next(line.split() for line in frame.splitlines() if line.startswith("high "))
    assert queue_row[1:6] == ["3", "1", "2", "1", "0"]  # pending .. completed, in STATES order
    worker_row = next(line.split() for line in frame.splitlines() if line.startswith(WORKER))
    assert worker_row[1:3] == ["1", "2"]  # running, reserved


def test_frames_as_plain_text_once_per_refresh_without_a_terminal() -> None:
    calls: list[int] = []

    def fetch() -> Overview:
        calls.append(1)
        if len(calls) > 3:
            raise KeyboardInterrupt
        return sample(len(calls), 10 * len(calls))

    console = Console(file=io.StringIO(), width=80)
    assert print_frames(fetch, 0.01, "jobqueue top", console) == 2
    out = console.file.getvalue()  # type: ignore[attr-defined]
    assert out.count("jobqueue top · ") == 2 and "\x1b" not in out and "quits" not in out


def test_top_into_a_pipe_prints_a_frame_per_refresh_and_ends_on_ctrl_c(
    live_settings: Settings, tmp_path: Path
) -> None:
    """The real command with stdout a pipe (not a terminal): frames arrive as it runs."""
    config = write_config(tmp_path / "c.yaml", live_settings)
    command = ["admin", "top", "--refresh", "100ms", "--config", str(config)]
    proc = subprocess.Popen(
        [sys.executable, "-m", "jobqueue", *command],
        env={**os.environ, "PYTHONPATH": str(REPO)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        headers = 0
        while headers < 2:
            line = proc.stdout.readline().decode()
            assert line, "the command ended before its second frame"
            headers += line.startswith("jobqueue top · ")
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0 and b"Traceback" not in err, err
