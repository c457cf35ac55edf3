"""One end-to-end run of ``jobqueue tui`` in a real terminal: tmux (its own server, on its
own socket) at 80x24, keys sent with send-keys, the screen read with capture-pane."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from jobqueue.client import Client
from jobqueue.config import Settings
from tests.conftest import make_settings

pytestmark = pytest.mark.e2e


class Terminal:
    def __init__(self, socket: str, session: str) -> None:
        self.base = ["tmux", "-L", socket]
        self.session = session

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*self.base, *args], capture_output=True, text=True, check=False)

    def screen(self) -> str:
        return self.run("capture-pane", "-p", "-t", self.session).stdout

    def keys(self, *keys: str) -> None:
        self.run("send-keys", "-t", self.session, *keys)

    def alive(self) -> bool:
        return self.run("has-session", "-t", self.session).returncode == 0

    def wait(self, *words: str, timeout: float = 30.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = self.screen()
            if all(word in text for word in words):
                return text
            time.sleep(0.05)
        raise AssertionError(f"never showed {words}; the screen:\n{self.screen()}")


@pytest.fixture
def terminal(tmp_path: Path, redis_url: str) -> Iterator[tuple[Terminal, Settings]]:
    assert shutil.which("tmux"), "tmux is missing: scripts/ensure-test-servers installs it"
    settings = make_settings(redis_url, redis={"namespace": "jqterm"})
    cfg = tmp_path / "config.yaml"
    cfg.write_text(yaml.safe_dump(settings.model_dump(mode="json")))
    term = Terminal(f"jqtui-{os.getpid()}", "tui")
    command = [sys.executable, "-c", "from jobqueue.launch import main; main()", "tui"]
    command += ["-c", str(cfg), "--refresh", "500ms"]
    term.run("new-session", "-d", "-s", "tui", "-x", "80", "-y", "24", *command)
    try:
        yield term, settings
    finally:
        term.run("kill-server")


def test_tui_in_tmux_starts_peeks_and_quits(terminal: tuple[Terminal, Settings]) -> None:
    term, settings = terminal
    with Client(settings=settings) as client:
        client.enqueue({"greeting": "hello from tmux"}, job_id="tmux-1", priority="high")
    frame = term.wait("● connected", "high", "dead_letter", "q quit")
    assert "Traceback" not in frame
    term.keys("p")
    term.wait("peek high", '"tmux-1"', "hello from tmux")
    term.keys("Escape")
    deadline = time.monotonic() + 30
    while "peek high" in term.screen() and time.monotonic() < deadline:
        time.sleep(0.05)
    term.keys("q")
    while term.alive() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not term.alive()
