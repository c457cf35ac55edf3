"""The command line: exit codes, one-line errors, role dispatch."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import tomllib
import types
from pathlib import Path
from unittest import mock

import pytest
import yaml
from typer.testing import CliRunner

import jobqueue
from jobqueue.admin.cli import admin_app
from jobqueue.cli import app, config_app
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


@pytest.mark.parametrize(
    ("role", "port"), [("producer", 9092), ("worker", 9091), ("reaper", 9093), ("all", 9091)]
)
def test_role_dispatch_with_a_metrics_port_per_role(role: str, port: int, tmp_path: Path) -> None:
    """Every role defaulted to 9091: producer, worker and reaper on one host collided."""
    path = tmp_path / "c.yaml"
    path.write_text("worker: {count: 3}\n")
    with mock.patch("jobqueue.roles.run_role", return_value=0) as run_role:
        result = runner.invoke(app, [f"--role={role}", "--config", str(path)])
    assert result.exit_code == 0, result.output
    (called_role, settings), _ = run_role.call_args
    assert called_role == role and settings.worker.count == 3
    assert settings.observability.metrics_port == port


def test_admin_cmd_needs_admin_role() -> None:
    result = runner.invoke(app, ["--role=worker", "--admin-cmd=stats"])
    assert result.exit_code == 2


@pytest.mark.parametrize(
    "args",
    [
        ["--role=worker"],
        ["--role", "all"],
        ["--config", "{path}", "--role=reaper"],
        ["--yes", "--role", "worker", "--config", "{path}"],
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
    wait_for(lambda: not any(alive(pid) for pid in group_members(worker.pid)), timeout=30)


# -- config mistakes reach the operator as one line, exit 2 -----------------------------------


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        (
            {"JOBQUEUE_WORKER__PRIORITIES": "high,low"},
            """JOBQUEUE_WORKER__PRIORITIES: expected a JSON list such as ["high","low"]""",
        ),
        (
            {"JOBQUEUE_WORKER__HANDLER__COMMAND": "python -m handler"},
            "JOBQUEUE_WORKER__HANDLER__COMMAND: expected a JSON list",
        ),
        ({"JOBQUEUE_WROKER__COUNT": "3"}, "did you mean JOBQUEUE_WORKER__COUNT?"),
        ({"JOBQUEUE_REDIS__URL": "http://db:6379"}, "redis.url: 'http://db:6379' is not a"),
        ({"JOBQUEUE_REDIS__URL": "127.0.0.1:6470"}, "write redis://127.0.0.1:6470"),
    ],
)
@pytest.mark.parametrize("command", [["config", "check"], ["admin", "stats"], ["--role=worker"]])
def test_config_mistakes_are_one_line_exit_2_on_every_command(
    tmp_cwd: Path, env: dict[str, str], expected: str, command: list[str]
) -> None:
    with mock.patch("jobqueue.roles.run_role", return_value=0) as run_role:
        result = runner.invoke(app, command, env=env)
    assert result.exit_code == 2, result.output
    assert not run_role.called and result.stdout == ""
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("error: invalid config: ") and expected in line


@pytest.mark.parametrize(
    ("handler", "problem"),
    [
        ({"type": "python", "callable": "tests.sample_handlers:no_such_function"}, "cannot load"),
        ({"type": "python", "callable": "no_such_module_jq:handle"}, "cannot load"),
        ({"type": "exec", "command": ["no-such-program-jq", "{filepath}"]}, "is not on PATH"),
        ({"type": "exec", "command": ["/nonexistent/bin/convert"]}, "is not on PATH"),
    ],
)
def test_config_check_loads_the_handler(
    tmp_path: Path, handler: dict[str, object], problem: str
) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({"worker": {"handler": handler}}))
    result = runner.invoke(app, ["config", "check", "--config", str(path)])
    assert result.exit_code == 2, result.output
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("error: invalid config: worker.handler.") and problem in line
    data = json.loads(runner.invoke(app, ["config", "check", "-c", str(path), "--json"]).stdout)
    assert data["valid"] is False and problem in data["problems"][0]


@pytest.mark.parametrize(
    "handler",
    [
        {"type": "python", "callable": "tests.sample_handlers:record"},
        {"type": "exec", "command": ["true"]},
        {"type": "exec", "command": [sys.executable, "-c", "pass"]},
    ],
)
def test_config_check_accepts_a_loadable_handler(
    tmp_path: Path, handler: dict[str, object]
) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({"worker": {"handler": handler}}))
    result = runner.invoke(app, ["config", "check", "--config", str(path)])
    assert result.exit_code == 0 and result.stdout == "config ok\n", result.output
    data = json.loads(runner.invoke(app, ["--json", "config", "check", "-c", str(path)]).stdout)
    assert data == {"valid": True, "config": str(path), "problems": []}


# -- the command line itself ---------------------------------------------------------------


def test_a_role_written_as_a_command_points_at_role() -> None:
    for role in ("worker", "producer", "reaper", "all"):
        result = runner.invoke(app, [role])
        assert result.exit_code == 2
        assert f"Roles run with --role: jobqueue --role={role}" in result.output
    assert "No such command 'nonsense'" in runner.invoke(app, ["nonsense"]).output


def every_command() -> list[list[str]]:
    commands = [[], ["admin"], ["config"]]
    for group in ("admin", "config"):
        typer_app = {"admin": admin_app, "config": config_app}[group]
        commands += [[group, str(info.name)] for info in typer_app.registered_commands]
    return commands


def test_help_everywhere_with_h_readable_and_completion_on() -> None:
    seen = 0
    for command in every_command():
        result = runner.invoke(app, [*command, "-h"])
        assert result.exit_code == 0, (command, result.output)
        assert result.stdout.startswith("Usage: "), command
        assert "``" not in result.stdout, f"doubled backticks in {command} help"
        for metavar in (" TEXT", " INTEGER", " FLOAT", " BOOLEAN"):
            assert metavar not in result.stdout, f"{command}: unreadable metavar{metavar}"
        seen += 1
    assert seen >= 15
    root_help = runner.invoke(app, ["--help"]).stdout
    assert "--install-completion" in root_help and "--show-completion" in root_help


def test_root_json_works_for_every_command_or_is_refused(tmp_cwd: Path) -> None:
    shown = runner.invoke(app, ["--json", "config", "show"])
    assert shown.exit_code == 0 and json.loads(shown.stdout)["redis"]["namespace"] == "jobqueue"
    for role in ("worker", "producer", "reaper", "all"):
        with mock.patch("jobqueue.roles.run_role", return_value=0) as run_role:
            result = runner.invoke(app, ["--json", f"--role={role}"])
        assert result.exit_code == 2 and not run_role.called
        (line,) = result.stderr.strip().splitlines()
        assert line.startswith("error: --json is for admin and config commands")
    top = runner.invoke(app, ["--json", "admin", "top", "--once"])
    assert top.exit_code == 2 and "admin top is a screen" in top.stderr


def test_local_config_is_ignored_by_git_and_license_is_an_spdx_string() -> None:
    ignored = subprocess.run(
        ["git", "check-ignore", "-q", "config/config.yaml"], cwd=REPO, check=False
    )
    assert ignored.returncode == 0, "config/config.yaml holds secrets: keep it out of git"
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert pyproject["project"]["license"] == "MIT"  # the table form warns at every install
    assert "setuptools>=77" in pyproject["build-system"]["requires"]
