"""The peers: each in its own venv under ``bench/.venvs/``, installed from PyPI on first use and
driven by ``bench/peers/<peer>.py`` (see bench/README.md for the setup of each)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from measure import LATENCY_ENV
from results import Run, console

BENCH = Path(__file__).resolve().parent
VENVS = BENCH / ".venvs"
PEER_SCRIPTS = BENCH / "peers"
KILL_MARGIN = 120.0  # beyond the drain's own timeout, before the whole peer run is killed


@dataclass(frozen=True, slots=True)
class PeerSpec:
    name: str  # venv folder and script name
    system: str
    requirements: tuple[str, ...]
    imports: tuple[str, ...]  # modules that must import for the venv to count as installed
    concurrency: tuple[int, ...]  # the no-op sweep; the best is reported

    @property
    def python(self) -> Path:
        return VENVS / self.name / "bin" / "python"

    @property
    def stamp(self) -> Path:
        return VENVS / self.name / ".bench-requirements"


# hiredis everywhere: jobqueue uses it, so every peer gets the same fast reply parser.
PEERS: dict[str, PeerSpec] = {
    spec.name: spec
    for spec in (
        PeerSpec(
            "dramatiq",
            "Dramatiq",
            ("dramatiq[redis]", "redis[hiredis]"),
            ("dramatiq", "hiredis"),
            (8, 32, 64, 128),
        ),
        PeerSpec("rq", "RQ", ("rq", "redis[hiredis]"), ("rq", "hiredis"), (1, 2, 4)),
        PeerSpec("arq", "arq", ("arq", "redis[hiredis]"), ("arq", "hiredis"), (10, 50, 200)),
        PeerSpec(
            "celery",
            "Celery",
            ("celery[redis]", "redis[hiredis]"),
            ("celery", "kombu.transport.redis", "hiredis"),
            (8, 32, 64),
        ),
        PeerSpec("huey", "Huey", ("huey", "redis[hiredis]"), ("huey", "hiredis"), (1, 2, 4, 8)),
        # saq imports typing_extensions without declaring it (seen with saq 0.26). Its
        # concurrency stays under 100: every running job holds one connection of redis-py's
        # asyncio pool, capped at 100 by default, and at 200 the worker stalls with
        # MaxConnectionsError.
        PeerSpec(
            "saq",
            "SAQ",
            ("saq", "redis[hiredis]", "typing_extensions"),
            ("saq", "hiredis"),
            (10, 40, 80),
        ),
    )
}


def _venv_ready(spec: PeerSpec) -> bool:
    if not spec.python.exists() or not spec.stamp.exists():
        return False
    if spec.stamp.read_text().split() != list(spec.requirements):
        return False
    probe = subprocess.run(
        [str(spec.python), "-c", "import " + ", ".join(spec.imports)],
        capture_output=True,
        check=False,
    )
    return probe.returncode == 0


def ensure_venv(spec: PeerSpec, skip_check: bool) -> str | None:
    """Create or complete the peer's venv unless it already has the peer; an error, or None."""
    venv = spec.python.parent.parent
    if skip_check:
        return None if spec.python.exists() else f"no venv at {venv}"
    if _venv_ready(spec):
        return None
    console.print(f"  installing {' '.join(spec.requirements)} into {venv} ...", markup=False)
    steps = [] if spec.python.exists() else [[sys.executable, "-m", "venv", str(venv)]]
    steps.append([str(spec.python), "-m", "pip", "install", "-q", *spec.requirements])
    for step in steps:
        done = subprocess.run(step, capture_output=True, text=True, timeout=900, check=False)
        if done.returncode != 0:
            return f"install failed: {(done.stderr or done.stdout).strip()[-800:]}"
    spec.stamp.write_text("\n".join(spec.requirements) + "\n")
    if not _venv_ready(spec):
        return f"installed, but `import {', '.join(spec.imports)}` fails"
    return None


def _peer_json(
    spec: PeerSpec, args: list[str], timeout: float, env: dict[str, str] | None = None
) -> tuple[dict[str, Any], str | None]:
    """Run ``bench/peers/<peer>.py <args>`` under the peer's own python; its JSON line, or an
    error when it printed none."""
    command = [str(spec.python), "-P", str(PEER_SCRIPTS / f"{spec.name}.py"), *args]
    process = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(BENCH), **(env or {})},
        start_new_session=True,  # its workers too, so a hang can be killed as a group
    )
    try:
        out, err = process.communicate(timeout=timeout + KILL_MARGIN)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
        return {}, f"timed out after {timeout + KILL_MARGIN:.0f}s (killed)"
    lines = [line for line in out.splitlines() if line.startswith("{")]
    if not lines:
        return {}, f"exit {process.returncode}, no result: {err.strip()[-800:]}"
    return json.loads(lines[-1]), None


def run_peer(
    spec: PeerSpec,
    url: str,
    count: int,
    concurrency: int,
    timeout: float,
    workload: str = "noop",
    task: str = "noop",
) -> Run:
    """One timed drain by ``bench/peers/<peer>.py`` under the peer's own python."""
    args = ["run", "--redis-url", url, "--count", str(count), "--concurrency", str(concurrency)]
    data, error = _peer_json(spec, [*args, "--timeout", str(timeout), "--task", task], timeout)
    if error is not None:
        config = f"concurrency {concurrency}, task {task}"
        return Run(workload, spec.system, "peer", count, config, error=error)
    run = Run(
        workload=workload,
        system=spec.system,
        kind="peer",
        jobs=int(data["jobs"]),
        config=str(data["config"]),
        seconds=float(data.get("seconds", 0.0)),
        jobs_per_sec=float(data.get("jobs_per_sec", 0.0)),
        startup_seconds=data.get("startup_seconds"),
        first_done=data.get("first_done"),
        enqueue_seconds=data.get("enqueue_seconds"),
        error=data.get("error"),
        log_tail=data.get("log_tail"),
    )
    if "memory" in data:
        run.details["memory"] = data["memory"]
    return run


def peer_enqueue(spec: PeerSpec, url: str, single: int, bulk: int, timeout: float) -> list[Run]:
    """The peer's client timed in its own process: one call per job, then its bulk call."""
    args = ["enqueue", "--redis-url", url, "--count", str(single), "--bulk-count", str(bulk)]
    data, error = _peer_json(spec, args, timeout)
    runs = []
    for style, jobs in (("single", single), ("batched", bulk)):
        part = data.get(style, {})
        config = str(part.get("config", "-"))
        run = Run("enqueue", spec.system, "peer", jobs, config, error=error or data.get("error"))
        run.details["style"] = style
        if run.error is None:
            run.error, run.skipped = part.get("error"), part.get("skipped")
            run.seconds = float(part.get("seconds", 0.0))
            run.jobs_per_sec = float(part.get("jobs_per_sec", 0.0))
        runs.append(run)
    return runs


def peer_latency(
    spec: PeerSpec, url: str, rate: float, count: int, concurrency: int, events: str, timeout: float
) -> tuple[dict[str, Any], str | None]:
    """The peer's ``latency`` mode: its JSON line (send figures) or an error; the task's
    ``"<sent> <started>"`` lines are in ``events``."""
    args = ["latency", "--redis-url", url, "--count", str(count), "--rate", str(rate)]
    args += ["--concurrency", str(concurrency), "--timeout", str(timeout)]
    data, error = _peer_json(spec, args, timeout, {LATENCY_ENV: events})
    return data, error or data.get("error")
