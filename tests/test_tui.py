"""The TUI driven through Textual's Pilot against a real redis-server with real jobs: every
key and mouse action of issue 13, and what each leaves in Redis."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from textual import events
from textual.pilot import Pilot
from textual.widgets import TabbedContent
from typer.testing import CliRunner

from jobqueue.admin import commands
from jobqueue.cli import app as app_cli
from jobqueue.client import Client
from jobqueue.config import Settings
from jobqueue.engine import Engine, Inspector
from jobqueue.job import job_from_dead_entry, new_job
from jobqueue.tui import EXTRA_MISSING
from jobqueue.tui.app import JobqueueApp
from jobqueue.tui.keys import KEYS
from jobqueue.tui.screens.bench import BenchScreen
from jobqueue.tui.screens.chart import ChartScreen
from jobqueue.tui.screens.confirm import ConfirmScreen
from jobqueue.tui.screens.help import HelpScreen, key_names
from jobqueue.tui.screens.text import TextScreen
from jobqueue.tui.widgets.status import StatusLine
from tests.conftest import make_settings
from tests.drain import draining
from tests.redis_server import RedisServer
from tests.tui_support import WORKER, bury, drive, register, screen_text, until

NS = "jqtui"


@pytest.fixture
def settings(redis_url: str) -> Settings:
    return make_settings(redis_url, redis={"namespace": NS})


@pytest.fixture
def eng(settings: Settings) -> Any:
    engine = Engine.from_settings(settings)
    yield engine
    engine.close()


def shown(app: JobqueueApp, pane: str) -> list[tuple[str, ...]]:
    return [row.cells for row in app.main.table(pane).shown]


def body(app: JobqueueApp) -> str:
    """The text of the open TextScreen (peek or job view)."""
    screen = app.screen
    assert isinstance(screen, TextScreen)
    return "\n".join(str(getattr(part, "text", part)) for part in screen.parts)


async def answer(pilot: Pilot[Any], app: JobqueueApp, *words: str, key: str = "y") -> None:
    screen = await until(pilot, lambda: isinstance(app.screen, ConfirmScreen) and app.screen)
    for word in words:
        assert word in screen.question
    await pilot.press(key)


async def tab_to(pilot: Pilot[Any], app: JobqueueApp, pane: str) -> None:
    while app.main.active != pane:
        await pilot.press("tab")


def test_queues_agree_with_the_cli_then_peek_by_key_and_by_right_click(
    settings: Settings,
) -> None:
    with Client(settings=settings) as client:
        for n in range(3):
            client.enqueue({"n": n, "word": "hello"}, job_id=f"high-{n}", priority="high")
        client.enqueue({"n": 9}, job_id="low-9", priority="low")
    app = JobqueueApp(settings, refresh=60)

    async def script(pilot: Pilot[Any]) -> None:
        cli = commands.stats(settings).stats.queues
        assert shown(app, "queues") == [
            (
                label,
                *(str(getattr(cli[label], s)) for s in ("pending", "scheduled", "reserved")),
                *(str(getattr(cli[label], s)) for s in ("running", "completed", "dead_letter")),
            )
            for label in ("high", "low")
        ]
        table = app.main.table("queues")
        await pilot.press("j")
        assert table.cursor_row == 1
        await pilot.press("k")
        assert table.cursor_row == 0
        await pilot.press("p")
        await until(pilot, lambda: isinstance(app.screen, TextScreen))
        text = body(app)
        assert '"high-0"' in text and '"hello"' in text and "low-9" not in text
        await pilot.press("escape")
        await until(pilot, lambda: not isinstance(app.screen, TextScreen))
        # right-click on the low row (row 2 of the table: under the header)
        await pilot.click(table, offset=(2, 2), button=3)
        await until(pilot, lambda: isinstance(app.screen, TextScreen))
        assert '"low-9"' in body(app) and "high-0" not in body(app)
        assert table.cursor_row == 1

    drive(app, script)


def test_keys_tab_is_the_scan_census(settings: Settings, eng: Engine) -> None:
    register(eng)
    app = JobqueueApp(settings, refresh=60)

    async def script(pilot: Pilot[Any]) -> None:
        await pilot.press("tab")
        assert app.main.active == "keys"
        await until(pilot, lambda: app.main.census is not None)
        census = commands.stats_keys(settings)
        assert app.main.census is not None
        assert app.main.census["by_kind"] == census["by_kind"]
        assert ("kind", "hb", "1") in shown(app, "keys")
        eng.enqueue(new_job("/x", "high"), "high")
        await pilot.press("r")
        await until(pilot, lambda: ("kind", "pending", "1") in shown(app, "keys"))

    drive(app, script)


def test_workers_tab_shows_held_jobs_heartbeat_and_breaker(settings: Settings) -> None:
    with Client(settings=settings) as client:
        client.enqueue({"n": 1}, job_id="held-1", priority="high")
    engine = Engine.from_settings(settings)
    register(engine)
    engine.claim("high", WORKER, 1)
    app = JobqueueApp(settings, refresh=60)

    async def script(pilot: Pilot[Any]) -> None:
        await tab_to(pilot, app, "workers")
        (row,) = shown(app, "workers")
        worker, state, _heartbeat, breaker, running, reserved, jobs = row
        assert (worker, state, breaker, running, reserved, jobs) == (
            WORKER,
            "live",
            "closed",
            "0",
            "1",
            "held-1",
        )

    drive(app, script)
    engine.close()


def test_dead_letter_open_requeue_delete_filter_and_purge(settings: Settings, eng: Engine) -> None:
    bury(eng, "high", "dead-a", "ValueError: alpha broke")
    bury(eng, "low", "dead-b", "KeyError: beta")
    bury(eng, "low", "dead-c", "KeyError: gamma")
    bury(eng, "low", "dead-d", "OSError: delta")
    client = Client(settings=settings)
    app = JobqueueApp(settings, refresh=60)

    def state(job_id: str) -> str | None:
        record = client.get(job_id)
        return record.state if record else None

    def dead_ids() -> set[str]:
        inspector = Inspector(eng)
        entries = [e.raw for q in ("high", "low") for e in inspector.peek_dead(q, 100)]
        return {job.id for job in map(job_from_dead_entry, entries) if job is not None}

    async def script(pilot: Pilot[Any]) -> None:
        await tab_to(pilot, app, "dead")
        rows = shown(app, "dead")
        assert [r[0] for r in rows] == ["dead-a", "dead-b", "dead-c", "dead-d"]
        assert rows[0][1:] == ("high", "1", "out of retries (0): ValueError: alpha broke")
        await pilot.press("enter")  # the job: its record and whole payload
        await until(pilot, lambda: isinstance(app.screen, TextScreen))
        assert "alpha broke" in body(app) and '"/data/dead-a"' in body(app)
        await pilot.press("escape")
        await until(pilot, lambda: not isinstance(app.screen, TextScreen))
        await pilot.press("R")  # requeue the selected one
        await answer(pilot, app, "dead-a", "1 job")
        await until(pilot, lambda: state("dead-a") == "pending")
        await until(pilot, lambda: shown(app, "dead")[0][0] == "dead-b")
        await pilot.press("X")  # delete the selected one
        await answer(pilot, app, "dead-b")
        await until(pilot, lambda: state("dead-b") is None)
        await pilot.press("slash", *"KeyEr")  # filter: only dead-c of what is left
        await until(pilot, lambda: [r[0] for r in shown(app, "dead")] == ["dead-c"])
        await pilot.press("enter", "F")  # keep the filter, requeue all it matches
        await answer(pilot, app, "1 dead jobs", "'KeyEr'")
        await until(pilot, lambda: state("dead-c") == "pending")
        await pilot.press("escape")  # clears the filter
        await until(pilot, lambda: [r[0] for r in shown(app, "dead")] == ["dead-d"])
        await pilot.press("D")  # purge: the confirm gives the count; "n" keeps them
        await answer(pilot, app, "1 jobs", key="n")
        assert commands.stats(settings).stats.dead_letter == 1
        await pilot.press("D")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        shown_then = dead_ids()
        bury(eng, "low", "dead-e", "OSError: epsilon")  # a job dies while the dialog is open
        (newer,) = dead_ids() - shown_then
        await answer(pilot, app, "1 jobs will be deleted", "low: 1")
        # What the dialog counted goes, not the job that died after it was shown.
        await until(pilot, lambda: dead_ids() == {newer})
        await until(pilot, lambda: [r[0] for r in shown(app, "dead")] == [newer])

    drive(app, script)
    client.close()


def test_scheduled_due_in_and_run_now(settings: Settings) -> None:
    with Client(settings=settings) as client:
        client.enqueue({"n": 1}, job_id="later-1", priority="low", delay=300)
        app = JobqueueApp(settings, refresh=60)

        async def script(pilot: Pilot[Any]) -> None:
            await tab_to(pilot, app, "scheduled")
            ((job, queue, due, attempts, _error),) = shown(app, "scheduled")
            assert (job, queue, attempts) == ("later-1", "low", "0")
            assert due.startswith("in 4m") or due == "in 5m"
            await pilot.press("N")
            await answer(pilot, app, "later-1", "queue low")
            await until(pilot, lambda: client.get("later-1").state == "pending")  # type: ignore[union-attr]
            await until(pilot, lambda: shown(app, "scheduled") == [])

        drive(app, script)


def test_purge_all_only_with_dev_and_after_a_confirm(settings: Settings, eng: Engine) -> None:
    bury(eng, "low", "dead-z", "boom")
    app = JobqueueApp(settings, refresh=60)

    async def refused(pilot: Pilot[Any]) -> None:
        await pilot.press("A")
        await until(pilot, lambda: any("--dev" in str(n.message) for n in app._notifications))
        assert not isinstance(app.screen, ConfirmScreen)

    drive(app, refused)
    keys = commands.stats_keys(settings)["keys"]
    assert keys > 0
    dev = JobqueueApp(settings, refresh=60, dev=True)

    async def purged(pilot: Pilot[Any]) -> None:
        await pilot.press("A")
        await answer(pilot, dev, f"{keys} keys will be deleted", repr(NS))
        await until(pilot, lambda: commands.stats_keys(settings)["keys"] == 0)

    drive(dev, purged)


def test_filter_help_chart_theme_and_quit(settings: Settings) -> None:
    with Client(settings=settings) as client:
        client.enqueue({"n": 1}, priority="high")
    app = JobqueueApp(settings, refresh=0.2)

    async def script(pilot: Pilot[Any]) -> None:
        await pilot.press("f", "H", "g", "H")  # fuzzy, any case
        assert [r[0] for r in shown(app, "queues")] == ["high"]
        assert "filter: HgH" in str(app.main.query_one(StatusLine).render())
        await pilot.press("escape")  # clears
        assert [r[0] for r in shown(app, "queues")] == ["high", "low"]
        await pilot.press("escape")  # now: help
        help_screen = await until(pilot, lambda: isinstance(app.screen, HelpScreen) and app.screen)
        listed = [
            str(help_screen.query_one("DataTable").get_row_at(i)[0]) for i in range(len(KEYS))
        ]
        assert listed == [key_names(key.keys) for key in KEYS]
        await pilot.press("escape")
        await until(pilot, lambda: not isinstance(app.screen, HelpScreen))
        await pilot.press("c")
        chart = await until(pilot, lambda: isinstance(app.screen, ChartScreen) and app.screen)
        samples = len(app.history.times)
        await until(pilot, lambda: len(app.history.times) > samples + 1)  # it keeps sampling
        assert list(chart.history.pending["high"])[-1] == 1
        await pilot.press("escape")
        assert app.current_theme.dark
        await pilot.press("t")
        assert not app.current_theme.dark
        await pilot.press("q")

    drive(app, script)
    assert app.return_code == 0


def test_mouse_hover_highlights_click_selects_wheel_scrolls(
    settings: Settings, eng: Engine
) -> None:
    for n in range(40):
        bury(eng, "low", f"dead-{n:02}", "boom")
    app = JobqueueApp(settings, refresh=60)

    async def script(pilot: Pilot[Any]) -> None:
        await tab_to(pilot, app, "dead")
        table = app.main.table("dead")
        await until(pilot, lambda: len(table.shown) == 40)
        await pilot.hover(table, offset=(3, 4))
        assert table.hover_row == 3
        await pilot.click(table, offset=(3, 5))
        assert table.cursor_row == 4 and table.selected().key == "dead-04"  # type: ignore[union-attr]
        await pilot.click(table, offset=(3, 5))  # again: opens it
        await until(pilot, lambda: isinstance(app.screen, TextScreen))
        assert "dead-04" in body(app)
        await pilot.press("escape")
        assert table.scroll_y == 0
        for _ in range(3):  # Pilot has no wheel: the event the terminal's wheel sends
            table.post_message(events.MouseScrollDown(table, 3, 5, 0, 1, 0, False, False, False))
        await until(pilot, lambda: table.scroll_y > 0)
        assert table.cursor_row == 4  # the wheel scrolls; the selection stays

    drive(app, script)


def test_bench_form_runs_with_progress_and_reports_percentiles(
    settings: Settings, eng: Engine
) -> None:
    app = JobqueueApp(settings, refresh=60)

    async def script(pilot: Pilot[Any]) -> None:
        await pilot.press("b")
        screen = await until(pilot, lambda: isinstance(app.screen, BenchScreen) and app.screen)
        assert screen.focused is not None and screen.focused.id == "count"
        await pilot.press(*"200")  # the field's text is selected on focus: typing replaces it
        await pilot.press("tab")  # tab cycles the fields
        assert screen.focused.id == "rate"
        with draining(eng, ["high", "low"]) as drain:
            await pilot.press("enter")
            await until(pilot, lambda: screen.report is not None, timeout=60)
        report = screen.report
        assert report is not None and drain.acked == 200 and report.completed == 200
        assert screen.query_one("#progress").progress == 200  # type: ignore[attr-defined]
        text = screen_text(app)  # the CLI's own table
        assert "latency p50" in text and "latency p99" in text and "throughput" in text
        await pilot.press("escape")  # no run: leaves
        await until(pilot, lambda: not isinstance(app.screen, BenchScreen))

    drive(app, script)


def test_bench_cancelled_with_esc_takes_its_jobs_back(settings: Settings) -> None:
    app = JobqueueApp(settings, refresh=60)

    async def script(pilot: Pilot[Any]) -> None:
        await pilot.press("b")
        screen = await until(pilot, lambda: isinstance(app.screen, BenchScreen) and app.screen)
        await pilot.press(*"1000", "tab", *"50", "enter")  # no worker: it cannot finish
        await until(pilot, lambda: screen.control is not None and screen.control.enqueued > 0)
        await pilot.press("escape")  # a run: cancels it
        await until(pilot, lambda: screen.report is not None)
        assert isinstance(app.screen, BenchScreen)  # still open, with the report
        report = screen.report
        assert report is not None and report.interrupted and report.withdrawn == report.enqueued
        assert commands.stats(settings).stats.queues["low"].pending == 0

    drive(app, script)


def test_redis_going_away_marks_figures_stale_and_coming_back_recovers() -> None:
    server = RedisServer().start()  # its own: this test stops it and starts it again
    try:
        settings = make_settings(server.url, redis={"namespace": NS})
        with Client(settings=settings) as client:
            client.enqueue({"n": 1}, priority="high")
        app = JobqueueApp(settings, refresh=0.2)

        async def script(pilot: Pilot[Any]) -> None:
            status = app.main.query_one(StatusLine)
            assert "● connected" in str(status.render()) and "Redis " in str(status.render())
            server.stop()
            await until(pilot, lambda: status.has_class("-down"))
            line = str(status.render())
            assert "STALE: figures from" in line and "connection refused" in line
            assert shown(app, "queues")[0][:2] == ("high", "1")  # the last figures stay...
            assert app.main.query_one(TabbedContent).has_class("-stale")  # ...dimmed
            await pilot.press("p")  # an action while Redis is away: one line, no crash
            await until(
                pilot, lambda: any("cannot reach" in str(n.message) for n in app._notifications)
            )
            server.start()  # same port, empty
            await until(pilot, lambda: not status.has_class("-down"))
            await until(pilot, lambda: shown(app, "queues")[0][:2] == ("high", "0"))
            assert not app.main.query_one(TabbedContent).has_class("-stale")

        drive(app, script)
    finally:
        server.cleanup()


# -- the command line ------------------------------------------------------------------------


@pytest.fixture
def cfg(tmp_path: Path, settings: Settings) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(settings.model_dump(mode="json")))
    return path


def test_cli_starts_the_tui_both_ways(cfg: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[str, float, bool]] = []
    monkeypatch.setattr(
        "jobqueue.tui.run", lambda s, refresh, dev: calls.append((s.redis.namespace, refresh, dev))
    )
    runner = CliRunner()
    assert runner.invoke(app_cli, ["tui", "-c", str(cfg), "--refresh", "500ms"]).exit_code == 0
    assert runner.invoke(app_cli, ["--role=tui", "--dev", "-c", str(cfg)]).exit_code == 0
    assert calls == [(NS, 0.5, False), (NS, 2.0, True)]


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["tui", "--refresh", "0s"], "--refresh must be > 0"),
        (["tui", "--refresh", "soon"], "--refresh"),
        (["--json", "tui"], "no --json"),
    ],
)
def test_cli_refuses_bad_tui_options_in_one_line(cfg: Path, args: list[str], words: str) -> None:
    result = CliRunner().invoke(app_cli, [*args, "-c", str(cfg)])
    assert result.exit_code == 2, result.output
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("error: ") and words in line


def test_cli_names_the_extra_when_textual_is_missing(
    cfg: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in [m for m in sys.modules if m.startswith(("textual", "jobqueue.tui."))]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "textual", None)
    result = CliRunner().invoke(app_cli, ["tui", "-c", str(cfg)])
    assert result.exit_code == 1
    assert result.stderr.strip() == f"error: {EXTRA_MISSING}"


def test_docs_list_every_key() -> None:
    text = (Path(__file__).resolve().parents[1] / "docs" / "tui.md").read_text()
    for key in KEYS:
        for name in key_names(key.keys).split(" / "):
            assert f"`{name}`" in text, name
