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
  single-job rate again while 100 streams are open (target: within 10 %). The rates with
  and without streams alternate, so a slower stretch of the machine weighs on both alike.

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
from pathlib import Path

import httpx
import uvloop
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
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


async def hammer(port: int, script: Path, seconds: float, connections: int) -> int:
    """Requests answered 2xx in ``seconds`` over ``connections`` keep-alive connections."""
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
    return int(answered.group(1))


async def rate_with_streams(port: int, script: Path, seconds: float, conns: int) -> tuple[int, int]:
    """The single-job rate while 100 event streams are open; returns it and the bytes the
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
    answered = await hammer(port, script, seconds, conns)
    for stream in streams:
        stream.cancel()
    await asyncio.gather(*streams, return_exceptions=True)
    return answered, read[0]


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


def measure(args: argparse.Namespace, redis_url: str, port: int, folder: Path) -> dict[str, float]:
    """Each figure is the median of ``--rounds``; the rates with and without event streams
    alternate, so a slower or faster stretch of the machine weighs on both alike."""
    one = wrk_script(folder, json.dumps({"payload": {"n": 1}}))
    batch = wrk_script(folder, json.dumps([{"payload": {"n": i}} for i in range(args.batch)]))
    uvloop.run(hammer(port, one, 1.0, args.connections))  # warm-up
    singles, with_sse, batched, streamed = [], [], [], 0
    for _ in range(args.rounds):
        flush(redis_url)
        singles.append(uvloop.run(hammer(port, one, args.seconds, args.connections)))
        flush(redis_url)
        answered, read = uvloop.run(rate_with_streams(port, one, args.seconds, args.connections))
        with_sse.append(answered)
        streamed += read
        flush(redis_url)
        batched.append(uvloop.run(hammer(port, batch, args.seconds, args.batch_connections)))
    flush(redis_url)
    single = statistics.median(singles) / args.seconds
    sse = statistics.median(with_sse) / args.seconds
    return {
        "single_requests_per_s": round(single),
        "batch_jobs_per_s": round(statistics.median(batched) * args.batch / args.seconds),
        "single_requests_per_s_with_100_sse": round(sse),
        "sse_slowdown": round(1 - sse / single, 3),
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
            "slowdown with 100 SSE clients",
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
            figures = measure(args, redis_url, port, Path(folder))
        finally:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=30)
    report(figures, args)
    if args.json:
        print(json.dumps(figures))


if __name__ == "__main__":
    main()
