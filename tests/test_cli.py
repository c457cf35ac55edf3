"""The command line: exit codes, one-line errors, role dispatch."""

from __future__ import annotations

import subprocess
import sys
import time
import types
from pathlib import Path
from unittest import mock

import pytest
from typer.testing import CliRunner

import jobqueue
from jobqueue.cli import app
from jobqueue.launch import role_of
from tests.helpers import REPO, alive, group_members, wait_for

runner = CliRunner()


def test_public_api_matches_all() -> None:
    eager = {
        name
        for name, value in vars(jobqueue).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType)
    }
    assert not eager, "public names are imported on first use, not at import time"
    public = {
        name
        for name in dir(jobqueue)
        if not name.startswith("_") and not isinstance(getattr(jobqueue, name), types.ModuleType)
    }
    assert set(jobqueue.__all__) - {"__version__"} == public
    with pytest.raises(AttributeError):
        jobqueue.no_such_name  # noqa: B018


def test_version() -> None:
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.stdout.strip() == f"jobqueue {jobqueue.__version__}"


def test_python_dash_m_works() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "jobqueue", "--version"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0 and done.stdout.startswith("jobqueue ")


def test_config_check_ok_and_invalid(tmp_path: Path) -> None:
    good = tmp_path / "good.yaml"
    good.write_text("worker: {count: 2}\n")
    assert runner.invoke(app, ["config", "check", "--config", str(good)]).exit_code == 0
    bad = tmp_path / "bad.yaml"
    bad.write_text("worker: {count: 0, cuont: 1}\n")
    result = runner.invoke(app, ["config", "check", "--config", str(bad)])
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 2 and all(line.startswith("error: invalid config: ") for line in lines)
    assert "Traceback" not in result.output


def test_invalid_config_on_any_command_exits_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("redis: {db: -1}\n")
    for args in (["--role=worker", f"--config={bad}"], ["admin", "stats", "--config", str(bad)]):
        result = runner.invoke(app, args)
        assert result.exit_code == 2, args
        assert "redis.db" in result.stderr


def test_config_show_redacts(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("redis: {url: 'redis://u:topsecret@h:1/0', password: hunter2}\n")
    result = runner.invoke(app, ["config", "show", "--config", str(path)])
    assert result.exit_code == 0
    assert "topsecret" not in result.stdout and "hunter2" not in result.stdout
    assert "namespace: jobqueue" in result.stdout


def test_unreachable_redis_is_one_line_exit_1(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JOBQUEUE_REDIS__URL", "redis://user:pw@127.0.0.1:1/0")
    monkeypatch.setenv("JOBQUEUE_REDIS__DIAL_TIMEOUT", "1s")
    started = time.monotonic()
    result = runner.invoke(app, ["admin", "stats"])
    assert time.monotonic() - started < 5
    assert result.exit_code == 1
    assert result.stderr.strip() == (
        "error: cannot reach Redis at redis://***@127.0.0.1:1/0: connection refused"
    )


def test_role_is_required_without_a_subcommand() -> None:
    assert runner.invoke(app, []).exit_code == 2


def test_unknown_role_is_usage_error() -> None:
    assert runner.invoke(app, ["--role=janitor"]).exit_code == 2


@pytest.mark.parametrize("role", ["producer", "worker", "reaper", "all"])
def test_role_dispatch(role: str, tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("worker: {count: 3}\n")
    with mock.patch("jobqueue.roles.run_role", return_value=0) as run_role:
        result = runner.invoke(app, [f"--role={role}", "--config", str(path)])
    assert result.exit_code == 0, result.output
    (called_role, settings), _ = run_role.call_args
    assert called_role == role and settings.worker.count == 3


def test_admin_cmd_needs_admin_role() -> None:
    result = runner.invoke(app, ["--role=worker", "--admin-cmd=stats"])
    assert result.exit_code == 2


@pytest.mark.parametrize(
    "args",
    [
        ["--role=worker"],
        ["--role", "all"],
        ["--config", "{path}", "--role=reaper"],
        ["--json", "--role", "worker", "--config", "{path}"],
    ],
)
def test_the_entry_point_reads_the_role_as_the_cli_does(args: list[str], tmp_path: Path) -> None:
    """``jobqueue.launch`` starts the fork server early only for the roles that run workers:
    it must read ``--role`` exactly as the CLI will."""
    path = tmp_path / "c.yaml"
    path.write_text("{}\n")
    args = [arg.format(path=path) for arg in args]
    with mock.patch("jobqueue.roles.run_role", return_value=0) as run_role:
        assert runner.invoke(app, args).exit_code == 0
    (called_role, _), _ = run_role.call_args
    assert role_of(args) == called_role


def test_a_worker_with_a_bad_config_exits_2_and_leaves_no_fork_server(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("worker: {count: 0}\n")
    worker = subprocess.Popen(
        [sys.executable, "-m", "jobqueue", "--role=worker", f"--config={path}"],
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    _, stderr = worker.communicate(timeout=60)
    assert worker.returncode == 2
    assert stderr.decode().strip() == (
        "error: invalid config: worker.count: Input should be greater than or equal to 1"
    )
    wait_for(lambda: not any(alive(pid) for pid in group_members(worker.pid)), timeout=10)
