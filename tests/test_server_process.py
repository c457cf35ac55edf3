"""``jobqueue serve`` as a real process on a real Redis: the API over the wire, the event
stream, the loopback-only bind without a token, and the dashboard in a real headless
Chromium (Debian's, driven by Playwright; scripts/ensure-test-servers installs it). One
server process serves the whole module."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from playwright.sync_api import expect, sync_playwright
from typer.testing import CliRunner

from jobqueue.cli import app
from jobqueue.config import Settings
from jobqueue.engine import Engine, Inspector
from jobqueue.job import new_job
from jobqueue.server.processes import QUICK_DEATHS, supervise
from tests import test_admin
from tests.conftest import make_settings
from tests.helpers import (
    REPO,
    alive,
    beat_then_hang,
    descendants,
    exit_at_once,
    wait_for,
    write_config,
)
from tests.redis_server import RedisServer, free_port
from tests.test_admin import A, bury, register
from tests.test_server_api import AUTH, TOKENS, server_settings

eng = test_admin.eng  # the fixture: an Engine on the flushed test Redis

CHROMIUM = "/usr/bin/chromium"
# The README's screenshot is refreshed only when asked (JQ_SCREENSHOTS=1): a test run must
# not change tracked files.
SCREENSHOT = REPO / "docs" / "dashboard.png" if os.environ.get("JQ_SCREENSHOTS") else None


@dataclass
class Served:
    url: str
    log: Path
    settings: Settings


def config_file(path: Path, settings: Settings) -> Path:
    """``write_config`` with the token values written out (a dump masks secrets)."""
    write_config(path, settings)
    data = yaml.safe_load(path.read_text())
    data["server"]["tokens"] = [
        {"name": t.name, "role": t.role, "token": t.token.get_secret_value()}
        for t in settings.server.tokens
    ]
    path.write_text(yaml.safe_dump(data))
    return path


def start(config: Path, log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "jobqueue", "serve", f"--config={config}"],
            env={**os.environ, "PYTHONPATH": str(REPO)},
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def stop(proc: subprocess.Popen[bytes]) -> None:
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


@pytest.fixture(scope="module")
def served(redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    folder = tmp_path_factory.mktemp("served")
    port = free_port()
    settings = server_settings(redis_server.url, port=port, events_interval="200ms")
    settings.observability.log_level = "info"
    proc = start(config_file(folder / "config.yaml", settings), folder / "server.log")
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: _ready(url, proc, folder / "server.log"), timeout=60)
        yield Served(url, folder / "server.log", settings)
    finally:
        stop(proc)


def _log_lines(log: Path) -> list[dict[str, Any]]:
    """The server's JSON log lines (complete ones: a line being written is left out)."""
    lines = log.read_text().split("\n")[:-1]
    return [json.loads(line) for line in lines if line.startswith("{")]


def _up(log: Path) -> set[int]:
    """The serving processes whose event loops have beaten (the watchdog is armed)."""
    return {int(e["pid"]) for e in _log_lines(log) if e["event"] == "serving process up"}


def _ready(url: str, proc: subprocess.Popen[bytes], log: Path) -> bool:
    assert proc.poll() is None, log.read_text()
    try:
        return httpx.get(f"{url}/readyz", timeout=2).status_code == 200
    except httpx.TransportError:
        return False


def complete(engine: Engine, queue: str, filepath: str) -> str:
    """One job through claim, start and ack, as a worker would; returns its id."""
    register(engine, A, "closed")
    job = new_job(filepath, queue)
    engine.enqueue(job, queue)
    raws = engine.claim(queue, A, 1) or []
    engine.start(queue, A, raws)
    engine.ack(queue, A, [engine.decode(queue, raws[0])])
    return job.id


def test_the_api_over_the_wire(served: Served, redis_url: str) -> None:
    with httpx.Client(base_url=served.url, timeout=10) as client:
        sent = client.post(
            "/api/v1/queues/high/jobs", json=[{"payload": 1}], headers=AUTH["enqueue"]
        )
        assert sent.status_code == 201
        job_id = sent.json()["ids"][0]
        assert (
            client.get(f"/api/v1/jobs/{job_id}", headers=AUTH["read"]).json()["state"] == "pending"
        )
        assert (
            client.post("/api/v1/dlq/requeue", json={}, headers=AUTH["enqueue"]).status_code == 403
        )
        assert client.get("/api/v1/stats").status_code == 401
        huge = client.post(
            "/api/v1/queues/high/jobs",
            content=b"[" + b" " * (65 << 10) + b"]",
            headers=AUTH["enqueue"],
        )
        assert huge.status_code == 413 and huge.json()["error"]["code"] == "payload_too_large"
        assert client.delete("/api/v1/dlq", headers=AUTH["admin"]).status_code == 200

    def audited() -> list[dict[str, Any]]:
        lines = served.log.read_text().splitlines()
        audits = [json.loads(line) for line in lines if '"api call"' in line]
        return [{k: a[k] for k in ("token", "method", "status")} for a in audits]

    wait_for(lambda: {"token": "admin-bot", "method": "DELETE", "status": 200} in audited())
    log = served.log.read_text()
    assert not any(token in log for token in TOKENS.values())


def test_events_stream_stats_and_job_changes(served: Served, eng: Engine) -> None:
    seen: dict[str, Any] = {"stats": None, "job": {}}
    with (
        httpx.Client(base_url=served.url, timeout=30) as client,
        client.stream("GET", "/api/v1/events", headers=AUTH["read"]) as stream,
    ):
        assert stream.headers["content-type"].startswith("text/event-stream")
        done = name = ""
        for line in stream.iter_lines():
            if line.startswith("event:"):
                name = line.split(":", 1)[1].strip()
            elif line.startswith("data:"):
                doc = json.loads(line.split(":", 1)[1])
                if name == "stats" and seen["stats"] is None:
                    seen["stats"] = doc
                    done = complete(eng, "high", "/ok.txt")
                    bury(eng, "low", "/bad.txt")
                elif name == "job":
                    seen["job"][doc["id"]] = doc
            if (
                done
                and done in seen["job"]
                and any(j["state"] == "dead_letter" for j in seen["job"].values())
            ):
                break
    assert set(seen["stats"]) >= {"at", "stats", "workers", "rates", "changes"}
    assert seen["job"][done]["state"] == "completed" and seen["job"][done]["priority"] == "high"
    dead_event = next(j for j in seen["job"].values() if j["state"] == "dead_letter")
    assert dead_event["last_error"].endswith("boom") and dead_event["queue"] == "low"


def test_without_a_token_it_listens_on_loopback_only_and_says_so(
    redis_url: str, tmp_path: Path
) -> None:
    port = free_port()
    settings = make_settings(redis_url, server={"host": "0.0.0.0", "port": port})
    settings.observability.log_level = "info"
    proc = start(write_config(tmp_path / "config.yaml", settings), tmp_path / "server.log")
    try:
        wait_for(lambda: _ready(f"http://127.0.0.1:{port}", proc, tmp_path / "server.log"), 60)
        log = (tmp_path / "server.log").read_text()
        assert "no server token configured: listening on 127.0.0.1 only" in log
        assert httpx.get(f"http://127.0.0.1:{port}/api/v1/stats").status_code == 200
    finally:
        stop(proc)


def test_serve_refusals_are_one_line(
    redis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = write_config(tmp_path / "config.yaml", make_settings(redis_url))
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = make_settings(redis_url, server={"port": taken.getsockname()[1]})
        result = CliRunner().invoke(
            app, ["serve", "--config", str(write_config(tmp_path / "b.yaml", busy))]
        )
        assert result.exit_code == 1 and "cannot listen on 127.0.0.1" in result.stderr
        last = result.stderr.strip().splitlines()[-1]  # after the no-token warning
        assert last.startswith("error: server.port") and "Traceback" not in result.stderr
    for name in [m for m in sys.modules if m.startswith("jobqueue.server")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "fastapi", None)
    result = CliRunner().invoke(app, ["--role=server", "--config", str(config)])
    assert result.exit_code == 2
    assert result.stderr.strip() == (
        "error: jobqueue serve needs the server extra (fastapi is missing): "
        "pip install 'jobqueue[server]'"
    )


def test_the_dashboard_in_a_real_browser(served: Served, eng: Engine) -> None:
    assert Path(CHROMIUM).exists(), "Chromium missing: run scripts/ensure-test-servers"
    register(eng, "web-1:4242:0:abc", "closed")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1100, "height": 1400})
        page.goto(served.url)
        login = page.locator("#login")
        expect(login).to_have_attribute("open", "")
        page.keyboard.press("Escape")  # closed the prompt and left the page stuck
        expect(login).to_have_attribute("open", "")
        page.get_by_role("textbox", name="Token").fill(TOKENS["admin"])
        page.get_by_role("button", name="Sign in").click()
        pending = page.locator('#queues tr[data-queue="high"] td.pending')
        expect(pending).to_have_text("0", timeout=30_000)
        jobs = [{"payload": {"n": n}} for n in range(5)]
        httpx.post(f"{served.url}/api/v1/queues/high/jobs", json=jobs, headers=AUTH["enqueue"])
        expect(pending).to_have_text("5", timeout=30_000)  # from the event stream, no reload
        bury(eng, "low", "/reports/q3.pdf")
        dead_id = json.loads(Inspector(eng).peek_dead("low", 1)[0].raw)["id"]
        row = page.locator(f'#dlq tr[data-job="{dead_id}"]')
        expect(row).to_contain_text("boom", timeout=30_000)
        shot = page.screenshot(full_page=True)
        assert shot.startswith(b"\x89PNG"), "the page rendered"
        if SCREENSHOT is not None:
            SCREENSHOT.write_bytes(shot)
        row.get_by_role("button", name=f"Requeue job {dead_id}").click()
        expect(page.locator("#confirm-text")).to_have_text(f"Requeue 1 dead job ({dead_id})?")
        page.get_by_role("button", name="Confirm").click()
        wait_for(lambda: getattr(eng.record(dead_id, ["low"]), "state", "") == "pending")
        expect(row).to_have_count(0, timeout=30_000)
        # Requeue all takes at most the count its dialog showed: a job that died while the
        # dialog was open stays dead (it was requeued unseen before: an adversarial run).
        page.select_option("#dlq-queue", "low")
        for n in range(2):
            bury(eng, "low", f"/reports/more-{n}.pdf")
        page.get_by_role("button", name="Requeue every dead job of the chosen queue").click()
        expect(page.locator("#confirm-text")).to_contain_text("dead jobs of low?")
        seen = _dead_ids(eng, "low")
        bury(eng, "low", "/reports/late.pdf")
        (late,) = _dead_ids(eng, "low") - seen
        page.get_by_role("button", name="Confirm").click()
        wait_for(lambda: _dead_ids(eng, "low") == {late})
        page.get_by_role("button", name="Delete every dead job of the chosen queue").click()
        expect(page.locator("#confirm-text")).to_have_text(
            "Delete 1 dead jobs of low for good?", timeout=30_000
        )
        bury(eng, "low", "/reports/later.pdf")
        (later,) = _dead_ids(eng, "low") - {late}
        page.get_by_role("button", name="Confirm").click()
        wait_for(lambda: _dead_ids(eng, "low") == {later})  # Purge too: what it showed
        refused = page.evaluate("fetch('/api/v1/stats').then(r => r.status)")
        assert refused == 401
        # Two requests refused together share one prompt, and both go on after it (the
        # second prompt took the first one's place, and its requests never went on).
        page.evaluate(
            "() => { token = ''; window.both = null;"
            " Promise.all([api('/stats'), api('/workers')]).then(() => (window.both = 'done')); }"
        )
        expect(login).to_have_attribute("open", "")
        page.get_by_role("textbox", name="Token").fill(TOKENS["admin"])
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_function("() => window.both === 'done'", timeout=30_000)
        browser.close()


def _dead_ids(engine: Engine, queue: str) -> set[str]:
    return {json.loads(e.raw)["id"] for e in Inspector(engine).peek_dead(queue, 1000)}


def _serving(parent: int) -> set[int]:
    """The serving processes ``parent`` started (not multiprocessing's resource tracker)."""
    found = set()
    for pid, above in descendants(parent).items():
        with contextlib.suppress(OSError):
            if above == parent and b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes():
                found.add(pid)
    return found


def _listening(port: int) -> int:
    """Sockets in LISTEN on ``port`` (IPv4), from /proc/net/tcp."""
    rows = Path("/proc/net/tcp").read_text().splitlines()[1:]
    return sum(1 for r in rows if r.split()[1].endswith(f":{port:04X}") and r.split()[3] == "0A")


def _metrics_dir(pid: int) -> Path:
    environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    found = next(v for v in environ if v.startswith(b"PROMETHEUS_MULTIPROC_DIR="))
    return Path(found.split(b"=", 1)[1].decode())


def _produced(text: str) -> float:
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("jobqueue_jobs_produced_total{")
    )


def test_several_processes_share_the_port_count_together_and_stop_together(
    redis_url: str, tmp_path: Path
) -> None:
    """server.processes: 2 is two processes on sockets of their own (SO_REUSEPORT), the
    connections spread over both; /metrics from either counts the jobs both enqueued; one
    that dies is replaced; SIGTERM stops them all and removes their metric files."""
    port, log = free_port(), tmp_path / "server.log"
    settings = server_settings(redis_url, port=port, processes=2)
    settings.observability.log_level = "info"
    proc = start(config_file(tmp_path / "config.yaml", settings), log)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: _ready(url, proc, log) and _listening(port) == 2, timeout=90)
        first = _serving(proc.pid)
        assert len(first) == 2
        connections = [httpx.Client(base_url=url, headers=AUTH["enqueue"]) for _ in range(16)]
        for client in connections * 5:
            assert client.post("/api/v1/queues/high/jobs", json={"payload": 1}).status_code == 201
        for client in connections:
            client.close()
        audits = [json.loads(line) for line in log.read_text().splitlines() if "api call" in line]
        assert {a["pid"] for a in audits} == first  # the kernel spread the connections
        for _ in range(10):  # each on a new connection: either process may answer
            scraped = httpx.get(f"{url}/metrics", headers=AUTH["read"], timeout=10)
            assert _produced(scraped.text) == 80
        # A second server on the port would share it (SO_REUSEPORT) without a word.
        second = CliRunner().invoke(app, ["serve", "--config", str(tmp_path / "config.yaml")])
        assert second.exit_code == 1, second.output
        assert f"server.port {port}: " in second.stderr and "Traceback" not in second.stderr

        folder = _metrics_dir(min(first))
        os.kill(min(first), signal.SIGKILL)
        wait_for(lambda: len(_serving(proc.pid) - first) == 1 and _listening(port) == 2, 90)
        assert "a server process died; starting another" in log.read_text()
        assert httpx.get(f"{url}/metrics", headers=AUTH["read"], timeout=10).status_code == 200
        survivors = _serving(proc.pid)
    finally:
        os.kill(proc.pid, signal.SIGTERM)
        code = proc.wait(timeout=60)
    assert code == -signal.SIGTERM  # as with one process: uvicorn ends by the signal
    assert not any(alive(pid) for pid in survivors)
    assert not folder.exists()


def test_sighup_stops_several_processes_as_cleanly_as_sigterm(
    redis_url: str, tmp_path: Path
) -> None:
    """A closed terminal sends SIGHUP: the processes stop and their metric files go."""
    port, log = free_port(), tmp_path / "server.log"
    settings = server_settings(redis_url, port=port, processes=2)
    proc = start(config_file(tmp_path / "config.yaml", settings), log)
    try:
        wait_for(
            lambda: _ready(f"http://127.0.0.1:{port}", proc, log) and _listening(port) == 2, 90
        )
        serving = _serving(proc.pid)
        folder = _metrics_dir(min(serving))
        os.kill(proc.pid, signal.SIGHUP)
        assert proc.wait(timeout=60) == -signal.SIGHUP
    finally:
        if proc.poll() is None:
            stop(proc)
    assert not any(alive(pid) for pid in serving)
    assert not folder.exists() and _listening(port) == 0


def test_sighup_stops_a_single_process_as_cleanly_as_sigterm(
    redis_url: str, tmp_path: Path
) -> None:
    """With processes: 1 SIGHUP killed the server on the spot (uvicorn handles SIGINT and
    SIGTERM only): its requests in flight and its shutdown went with it."""
    port, log = free_port(), tmp_path / "server.log"
    settings = server_settings(redis_url, port=port)
    settings.observability.log_level = "info"  # uvicorn says when its shutdown completes
    proc = start(config_file(tmp_path / "config.yaml", settings), log)
    try:
        wait_for(lambda: _ready(f"http://127.0.0.1:{port}", proc, log), 90)
        os.kill(proc.pid, signal.SIGHUP)
        assert proc.wait(timeout=60) == -signal.SIGHUP
    finally:
        if proc.poll() is None:
            stop(proc)
    assert "Application shutdown complete" in log.read_text()


def test_a_process_that_keeps_failing_at_start_stops_the_server(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert supervise(2, exit_at_once, (), grace=5) == 1
    said = capsys.readouterr()
    assert f"a server process exited {QUICK_DEATHS} times within" in said.out + said.err


def test_a_process_whose_event_loop_hangs_is_killed_and_replaced(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A hung process keeps its socket, and the kernel goes on handing it connections that
    nobody answers. Each one here beats once and hangs: the watchdog kills it, and a new
    one takes its place, hangs too, until three quick deaths in a row stop the server
    (without the watchdog this never returns)."""
    assert supervise(1, beat_then_hang, (), grace=5, watchdog=2.0) == 1
    said = capsys.readouterr()
    logged = said.out + said.err
    assert logged.count("has not beaten for") == QUICK_DEATHS, logged
    assert f"a server process exited {QUICK_DEATHS} times within" in logged


def test_a_stopped_serving_process_is_replaced_and_the_port_still_answers(
    redis_url: str, tmp_path: Path
) -> None:
    """SIGSTOP stands for an event loop stuck in a call: the process's beats (uvicorn's
    callback_notify) stop, so server.watchdog_timeout later it is killed and replaced."""
    port, log = free_port(), tmp_path / "server.log"
    settings = server_settings(redis_url, port=port, processes=2)
    settings.server.watchdog_timeout = 2.0
    settings.observability.log_level = "info"  # the processes say when they are up
    proc = start(config_file(tmp_path / "config.yaml", settings), log)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: _ready(url, proc, log) and _listening(port) == 2, timeout=90)
        first = _serving(proc.pid)
        wait_for(lambda: _up(log) == first, timeout=90)  # each has beaten once
        hung = min(first)
        os.kill(hung, signal.SIGSTOP)
        wait_for(lambda: not alive(hung) and len(_serving(proc.pid) - first) == 1, timeout=90)
        wait_for(lambda: _listening(port) == 2 and _ready(url, proc, log), timeout=90)
        killed = [e for e in _log_lines(log) if "has not beaten for" in e["event"]]
        assert [(e["pid"], e["ever_beat"]) for e in killed] == [(hung, True)]
    finally:
        stop(proc)


def test_serving_processes_stop_when_their_supervisor_is_killed(
    redis_url: str, tmp_path: Path
) -> None:
    """SIGKILL leaves the parent no time to stop its processes: Linux sends each SIGTERM
    (PR_SET_PDEATHSIG), so no orphan keeps serving the port."""
    port, log = free_port(), tmp_path / "server.log"
    settings = server_settings(redis_url, port=port, processes=2)
    proc = start(config_file(tmp_path / "config.yaml", settings), log)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: _ready(url, proc, log) and _listening(port) == 2, timeout=90)
        serving = _serving(proc.pid)
        folder = _metrics_dir(min(serving))
        proc.kill()
        proc.wait(timeout=30)
        wait_for(lambda: not any(alive(pid) for pid in serving), timeout=60)
        assert _listening(port) == 0
    finally:
        with contextlib.suppress(ProcessLookupError):  # what is left of the group, if any
            os.killpg(proc.pid, signal.SIGKILL)
    shutil.rmtree(folder, ignore_errors=True)  # the killed parent could not


@pytest.mark.parametrize("processes", [1, 2])
def test_a_stopping_server_ends_its_event_streams_instead_of_waiting_them_out(
    redis_url: str, tmp_path: Path, processes: int
) -> None:
    """An event stream never ends by itself: on SIGTERM the server ends it (the client
    sees the stream close), rather than waiting out its grace and cancelling it with an
    error line."""
    port, log = free_port(), tmp_path / "server.log"
    settings = server_settings(redis_url, port=port, processes=processes)
    settings.observability.log_level = "info"
    proc = start(config_file(tmp_path / "config.yaml", settings), log)
    url = f"http://127.0.0.1:{port}"
    ended = threading.Event()

    def listen() -> None:
        with (
            httpx.Client(base_url=url, timeout=60) as client,
            client.stream("GET", "/api/v1/events", headers=AUTH["read"]) as stream,
        ):
            for line in stream.iter_lines():
                if line.startswith("event: stats"):
                    listening.set()
        ended.set()  # the server closed the stream cleanly (no exception)

    listening = threading.Event()
    try:
        wait_for(lambda: _ready(url, proc, log) and _listening(port) == processes, timeout=90)
        reader = threading.Thread(target=listen, daemon=True)
        reader.start()
        assert listening.wait(60)
        os.kill(proc.pid, signal.SIGTERM)
        assert proc.wait(timeout=60) == -signal.SIGTERM
        reader.join(timeout=60)
    finally:
        if proc.poll() is None:
            stop(proc)
    assert ended.is_set()
    assert "graceful shutdown exceeded" not in log.read_text()
