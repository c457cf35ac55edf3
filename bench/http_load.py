"""Load on ``jobqueue serve``: a real server process on a throwaway Redis (never 6379).

    .venv/bin/python bench/http_load.py [--seconds 5] [--rounds 3] [--processes N]

Three figures, each the median of ``--rounds`` runs (5) of ``--seconds`` (5) of steady load on
keep-alive connections, against ``jobqueue serve`` with ``server.processes`` one per CPU
(``--processes``; the kernel spreads connections over them, so the batch figure uses 16
connections: 4 could hash onto one process):

- single-job enqueue requests/s: ``POST /api/v1/queues/high/jobs`` with one job per request
  (target >= 2,000/s);
- jobs/s in batch requests: the same with ``--batch`` jobs per request (target >= 50,000/s);
- API throughput with 100 connected SSE clients (``/api/v1/events``) against without: the
  single-job rate again while 100 streams are open (target: within 10 %). The rounds with
  and without streams alternate, and the slowdown is the median of each pair's ratio, so a
  slower stretch of the machine weighs on both sides of a pair alike. Beside it, the
  server's CPU time per request in both (``/proc``, the whole process tree): on a shared
  2-core machine the rate of one 5 s round moved by 40 % from one round to the next, its
  CPU per request far less, so this says what the streams cost the server itself.

The requests come from wrk (Debian's ``wrk``; the script says how to install it when it is
missing): on a 2-core machine the load generator shares the CPU with the server and Redis,
and a Python client took a tenth of the machine at 2,000 requests/s (httpx, several times
the server's own cost). A request answered with anything but 2xx stops the run. The 100
event streams are read by asyncio tasks that await their sockets and nothing else. The
server logs every enqueue (audit lines) to a file, as in production. Not a test: nothing
asserts; the figures and the targets are printed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import uvloop
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from measure import cpu_seconds
from throwaway_redis import _free_port, flush, throwaway_redis

REPO = Path(__file__).resolve().parents[1]
TOKEN = "bench-token-" + "x" * 20
STREAMS = 100  # open event streams while the single-job rate is measured again
TARGETS = {"single": 2000.0, "batch": 50000.0, "sse_slowdown": 0.10}


def wrk_script(folder: Path, body: str) -> Path:
    """A wrk script that POSTs ``body`` to the enqueue endpoint with the bench token."""
    script = folder / f"post-{len(body)}.lua"
    script.write_text(
        'wrk.method = "POST"\n'
        f"wrk.body = {json.dumps(body)}\n"
        'wrk.headers["Content-Type"] = "application/json"\n'
        f'wrk.headers["Authorization"] = "Bearer {TOKEN}"\n'
    )
    return script


@dataclass(frozen=True)
class Round:
    """One wrk run: requests answered 2xx, and the server's CPU seconds meanwhile."""

    answered: int
    cpu: float

    @property
    def cpu_us_per_request(self) -> float:
        return 1e6 * self.cpu / max(self.answered, 1)


async def hammer(server: int, port: int, script: Path, seconds: float, connections: int) -> Round:
    """``seconds`` of load over ``connections`` keep-alive connections, against the server
    whose process tree starts at pid ``server``."""
    before = cpu_seconds(server)
    url = f"http://127.0.0.1:{port}/api/v1/queues/high/jobs"
    wrk = await asyncio.create_subprocess_exec(
        *("wrk", "-t", "1", "-c", str(connections), "-d", f"{seconds:g}s", "-s", str(script)),
        url,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out = (await wrk.communicate())[0].decode()
    answered = re.search(r"(\d+) requests in", out)
    if wrk.returncode != 0 or answered is None or "Non-2xx" in out or "errors:" in out:
        raise RuntimeError(f"wrk: {out.strip()}")
    return Round(int(answered.group(1)), cpu_seconds(server) - before)


async def rate_with_streams(
    server: int, port: int, script: Path, seconds: float, conns: int
) -> tuple[Round, int]:
    """The single-job load while 100 event streams are open; returns it and the bytes the
    streams read. Each stream's reader awaits its socket and nothing else (no timeouts to
    wake on): the load generator shares the CPU, and its own cost must not count as the
    server's slowdown."""
    request = (
        f"GET /api/v1/events HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Authorization: Bearer {TOKEN}\r\nAccept: text/event-stream\r\n\r\n"
    ).encode()
    read, opened, ready = [0], [0], asyncio.Event()

    async def listen() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 200"), head[:60]
            opened[0] += 1
            if opened[0] == STREAMS:
                ready.set()
            while chunk := await reader.read(65536):
                read[0] += len(chunk)
        finally:
            writer.close()

    streams = [asyncio.create_task(listen()) for _ in range(STREAMS)]
    await asyncio.wait_for(ready.wait(), 30)
    await asyncio.sleep(1.5)  # the poller is running for them
    loaded = await hammer(server, port, script, seconds, conns)
    for stream in streams:
        stream.cancel()
    await asyncio.gather(*streams, return_exceptions=True)
    return loaded, read[0]


def start_server(
    redis_url: str, folder: Path, processes: int = 1
) -> tuple[subprocess.Popen[bytes], int]:
    port = _free_port()
    config = {
        "redis": {"url": redis_url},
        "observability": {"log_format": "json", "log_level": "info"},
        "server": {
            "port": port,
            "processes": processes,
            "tokens": [{"name": "bench", "role": "admin", "token": TOKEN}],
        },
    }
    (folder / "config.yaml").write_text(yaml.safe_dump(config))
    log = (folder / "server.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "jobqueue", "serve", f"--config={folder / 'config.yaml'}"],
        env={**os.environ, "PYTHONPATH": str(REPO)},
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                return proc, port
        except httpx.TransportError:
            time.sleep(0.1)
    raise RuntimeError(f"server did not start: {(folder / 'server.log').read_text()[-2000:]}")


def measure(
    args: argparse.Namespace, redis_url: str, server: int, port: int, folder: Path
) -> dict[str, float]:
    """Each figure is the median of ``--rounds``; a round runs without and with event
    streams back to back, and the slowdown is the median of those pairs' ratios."""
    one = wrk_script(folder, json.dumps({"payload": {"n": 1}}))
    batch = wrk_script(folder, json.dumps([{"payload": {"n": i}} for i in range(args.batch)]))
    uvloop.run(hammer(server, port, one, 1.0, args.connections))  # warm-up
    singles: list[Round] = []
    with_sse: list[Round] = []
    batched: list[Round] = []
    streamed = 0
    for _ in range(args.rounds):
        flush(redis_url)
        singles.append(uvloop.run(hammer(server, port, one, args.seconds, args.connections)))
        flush(redis_url)
        loaded, read = uvloop.run(
            rate_with_streams(server, port, one, args.seconds, args.connections)
        )
        with_sse.append(loaded)
        streamed += read
        flush(redis_url)
        batched.append(
            uvloop.run(hammer(server, port, batch, args.seconds, args.batch_connections))
        )
    flush(redis_url)
    pairs = list(zip(singles, with_sse, strict=True))
    median = statistics.median
    return {
        "single_requests_per_s": round(median(r.answered for r in singles) / args.seconds),
        "batch_jobs_per_s": round(median(r.answered for r in batched) * args.batch / args.seconds),
        "single_requests_per_s_with_100_sse": round(
            median(r.answered for r in with_sse) / args.seconds
        ),
        "sse_slowdown": round(1 - median(s.answered / p.answered for p, s in pairs), 3),
        "server_cpu_us_per_request": round(median(r.cpu_us_per_request for r in singles)),
        "server_cpu_us_per_request_with_100_sse": round(
            median(r.cpu_us_per_request for r in with_sse)
        ),
        "sse_cpu_cost": round(
            median(s.cpu_us_per_request / p.cpu_us_per_request for p, s in pairs) - 1, 3
        ),
        "sse_bytes_read": streamed,
    }


def report(figures: dict[str, float], args: argparse.Namespace) -> None:
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(
        f"jobqueue serve under load: medians of {args.rounds} rounds of {args.seconds:g} s; "
        f"{args.connections} connections ({args.batch_connections} for batches), "
        f"server.processes {args.processes}; load average {load}"
    )
    rows = [
        (
            "single-job enqueue requests/s",
            figures["single_requests_per_s"],
            ">= 2,000",
            figures["single_requests_per_s"] >= TARGETS["single"],
        ),
        (
            f"jobs/s in batch requests of {args.batch}",
            figures["batch_jobs_per_s"],
            ">= 50,000",
            figures["batch_jobs_per_s"] >= TARGETS["batch"],
        ),
        (
            "single-job requests/s with 100 SSE clients",
            figures["single_requests_per_s_with_100_sse"],
            "",
            True,
        ),
        (
            "server CPU µs per request, without / with SSE",
            f"{figures['server_cpu_us_per_request']} / "
            f"{figures['server_cpu_us_per_request_with_100_sse']}",
            "",
            True,
        ),
        (
            "server CPU per request added by 100 SSE clients",
            f"{figures['sse_cpu_cost']:+.1%}",
            "",
            True,
        ),
        (
            "slowdown with 100 SSE clients (pairs' median)",
            f"{figures['sse_slowdown']:.1%}",
            "<= 10%",
            figures["sse_slowdown"] <= TARGETS["sse_slowdown"],
        ),
    ]
    for name, value, goal, ok in rows:
        shown = f"{value:,}" if isinstance(value, int | float) else value
        verdict = ("PASS" if ok else "MISS") if goal else ""
        print(f"  {name:<45} {shown:>10}  {goal:<9} {verdict}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--batch-connections", type=int, default=16)
    parser.add_argument(
        "--processes",
        type=int,
        default=len(os.sched_getaffinity(0)),
        help="server.processes (default: one per CPU this may run on)",
    )
    parser.add_argument("--json", action="store_true", help="print the figures as JSON too")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("bench/http_load.py needs wrk, the HTTP load generator: apt-get install wrk")
    with throwaway_redis() as redis_url, tempfile.TemporaryDirectory() as folder:
        proc, port = start_server(redis_url, Path(folder), args.processes)
        try:
            figures = measure(args, redis_url, proc.pid, port, Path(folder))
        finally:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=30)
    report(figures, args)
    if args.json:
        print(json.dumps(figures))


if __name__ == "__main__":
    main()
