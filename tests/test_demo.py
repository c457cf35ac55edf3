"""`make demo` end to end, on the embedded redis-server it uses by default."""

from __future__ import annotations

from pathlib import Path

import pytest

from jobqueue.demo import run_demo


def test_demo_runs_the_pipeline_on_embedded_redis(
    tmp_cwd: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("JOBQUEUE_REDIS__URL", f"embedded://{tmp_cwd / 'redis'}")
    assert run_demo(tmp_cwd / "samples") == 0
    out = capsys.readouterr().out
    assert "completed     291" in out and "dead-lettered 9" in out
    assert "embedded redis" in out
