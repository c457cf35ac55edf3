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
    command = [str(spec.python), "-P", str(PEER_SCRIPTS / f"{spec.name}.py"), "run"]
    command += ["--redis-url", url, "--count", str(count), "--concurrency", str(concurrency)]
    command += ["--timeout", str(timeout), "--task", task]
    env = {**os.environ, "PYTHONPATH": str(BENCH)}
    failed = Run(workload, spec.system, "peer", count, f"concurrency {concurrency}, task {task}")
    process = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        start_new_session=True,  # its workers too, so a hang can be killed as a group
    )
    try:
        out, err = process.communicate(timeout=timeout + KILL_MARGIN)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
        failed.error = f"timed out after {timeout + KILL_MARGIN:.0f}s (killed)"
        return failed
    lines = [line for line in out.splitlines() if line.startswith("{")]
    if not lines:
        failed.error = f"exit {process.returncode}, no result: {err.strip()[-800:]}"
        return failed
    data = json.loads(lines[-1])
    return Run(
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
