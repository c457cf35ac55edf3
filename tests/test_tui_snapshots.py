"""Snapshots of the TUI's screens (pytest-textual-snapshot) at 80x24 and 160x48, against a
real redis-server with real jobs. What varies from run to run is pinned: the clock (fixed,
UTC), the job ids (chosen), and the status line's port and memory (rewritten after the
first sample: the line's own test is in test_tui.py). Update after a deliberate change with
``pytest tests/test_tui_snapshots.py --snapshot-update`` and look at the report."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from textual.pilot import Pilot

from jobqueue.admin.commands import ServerInfo
from jobqueue.client import Client
from jobqueue.config import Settings
from jobqueue.engine import Engine
from jobqueue.tui.app import JobqueueApp
from jobqueue.tui.screens.bench import BenchScreen
from jobqueue.tui.screens.confirm import ConfirmScreen
from jobqueue.tui.screens.help import HelpScreen
from jobqueue.tui.widgets.status import StatusLine
from tests.conftest import make_settings
from tests.tui_support import bury, until

FIXED = datetime(2024, 5, 1, 10, 0, 0, tzinfo=UTC).timestamp()
Snap = Callable[..., bool]


@pytest.fixture(autouse=True)
def utc(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


@pytest.fixture
def app(redis_url: str) -> Iterator[JobqueueApp]:
    settings: Settings = make_settings(redis_url, redis={"namespace": "jqsnap"})
    with Client(settings=settings) as client:
        for n in range(3):
            client.enqueue({"n": n}, job_id=f"high-{n}", priority="high")
        client.enqueue({"n": 9}, job_id="low-9", priority="low")
    engine = Engine.from_settings(settings)
    bury(engine, "low", "dead-1", "ValueError: the file is not a PDF")
    bury(engine, "high", "dead-2", "TimeoutError: handler ran past 30s")
    engine.close()
    yield JobqueueApp(settings, refresh=3600, clock=lambda: FIXED)


def then(*keys: str, screen: type | None = None) -> Callable[[Pilot[Any]], Any]:
    """run_before: wait for the first sample, pin the status line, press ``keys``, and wait
    for ``screen`` when they open one."""

    async def run(pilot: Pilot[Any]) -> None:
        app: JobqueueApp = pilot.app  # type: ignore[assignment]
        await until(pilot, lambda: app.sample is not None)
        status = app.main.query_one(StatusLine)
        status.connected("redis://127.0.0.1:6379/0", ServerInfo("7.0.15", 1_572_864), FIXED, "")
        await pilot.press(*keys)
        if screen is not None:
            await until(pilot, lambda: isinstance(app.screen, screen))

    return run


@pytest.mark.parametrize("size", [(80, 24), (160, 48)])
def test_queues(snap_compare: Snap, app: JobqueueApp, size: tuple[int, int]) -> None:
    assert snap_compare(app, terminal_size=size, run_before=then())


@pytest.mark.parametrize("size", [(80, 24), (160, 48)])
def test_dead_letter(snap_compare: Snap, app: JobqueueApp, size: tuple[int, int]) -> None:
    assert snap_compare(app, terminal_size=size, run_before=then("tab", "tab", "tab"))


def test_queues_light_theme(snap_compare: Snap, app: JobqueueApp) -> None:
    assert snap_compare(app, run_before=then("t"))


def test_help(snap_compare: Snap, app: JobqueueApp) -> None:
    assert snap_compare(app, run_before=then("question_mark", screen=HelpScreen))


def test_confirm_purge_dlq_dims_the_screen(snap_compare: Snap, app: JobqueueApp) -> None:
    assert snap_compare(app, run_before=then("D", screen=ConfirmScreen))


def test_bench_form(snap_compare: Snap, app: JobqueueApp) -> None:
    assert snap_compare(app, run_before=then("b", screen=BenchScreen))
