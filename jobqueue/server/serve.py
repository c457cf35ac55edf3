"""``jobqueue serve``: bind, say where, run uvicorn until SIGINT or SIGTERM.

With no token configured the server binds 127.0.0.1 whatever ``server.host`` says, and logs
it: every caller would be admin. The socket is bound here, before uvicorn starts, so a port
in use is one line and exit 1 rather than uvicorn's own exit.

``server.processes`` > 1 serves the port from that many processes (processes.py), each
with its own connection pool, event poller and queue sampler. Their counters go through
prometheus-client's multiprocess mode, in a folder made here and removed at exit, so
``/metrics`` from any of them counts the jobs they all enqueued.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import os
import shutil
import signal
import socket
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from types import FrameType
from typing import Any

import uvicorn
from fastapi import FastAPI

from jobqueue.config import Settings
from jobqueue.errors import OperationalError
from jobqueue.observe.logs import configure_logging, get_logger
from jobqueue.server.app import create_app
from jobqueue.server.auth import Tokens
from jobqueue.server.deps import Parts
from jobqueue.server.processes import STOP_SIGNALS, supervise

log: Any = get_logger("jobqueue.server")
LOOPBACK = "127.0.0.1"
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
GRACE_SECONDS = 5  # for the requests in flight at SIGTERM


def bind(host: str, port: int, *, reuse_port: bool = False, listen: bool = True) -> socket.socket:
    """A socket bound to ``host:port`` (listening unless told not to). ``reuse_port``: one
    of several processes' sockets on the port, which the kernel balances connections over."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        if not hasattr(socket, "SO_REUSEPORT"):
            sock.close()
            raise OperationalError("server.processes > 1 needs SO_REUSEPORT (Linux): set it to 1")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise OperationalError(
            f"server.port {port}: cannot listen on {host}: {exc.strerror or exc}"
        ) from exc
    if listen:
        sock.listen(2048)
    return sock


def serve(settings: Settings) -> int:
    """Run the HTTP API and dashboard until signalled; returns the exit code."""
    tokens = Tokens.from_config(settings.server)
    host = settings.server.host
    if tokens.open:
        log.warning(
            f"no server token configured: listening on {LOOPBACK} only and every local caller "
            "is admin; set server.tokens or server.token_file to serve other hosts",
            configured_host=host,
        )
        host = LOOPBACK
    processes = settings.server.processes
    held = (
        [bind(host, settings.server.port)]
        if processes == 1
        else _hold_port(host, settings.server.port)
    )
    port = held[0].getsockname()[1]
    names = {caller.name: caller.role for _, caller in tokens.entries}
    log.info(
        f"serving the API and dashboard on http://{host}:{port}/",
        tokens=names,
        host=host,
        port=port,
        processes=processes,
    )
    if processes == 1:
        _run(create_app(settings, tokens), held[0])
        return 0
    with contextlib.ExitStack() as stack:
        for sock in held:
            stack.enter_context(sock)
        folder = stack.enter_context(_metrics_folder())
        args = (settings, tokens, host, port, folder)
        watchdog = settings.server.watchdog_timeout
        code = supervise(
            processes, _serve_process, args, grace=GRACE_SECONDS + 5, watchdog=watchdog
        )
    if code < 0:  # stopped by a signal: end by it, as one uvicorn process does
        signal.raise_signal(-code)  # SIGINT's handler raises KeyboardInterrupt (exit 130)
        return 128 - code
    return code


def _hold_port(host: str, port: int) -> list[socket.socket]:
    """The port for several processes, held until the server stops by a socket bound but
    not listening (no connection waits on it); each process listens on a socket of its own.

    SO_REUSEPORT sockets share a port with one another, so a second server with
    processes > 1 would bind beside this one and silently take half its connections.
    Hence the port is first bound alone, without SO_REUSEPORT, which fails while another
    program listens on it; and a lock named after the port (an abstract unix socket,
    gone with the process) refuses a second jobqueue server even while this one's
    processes are still starting. Returns the sockets to keep open."""
    with bind(host, port, listen=False) as alone:
        port = alone.getsockname()[1]  # port 0: the one the kernel chose
    lock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        lock.bind(f"\0jobqueue-serve:{host}:{port}")
    except OSError:
        lock.close()
        raise OperationalError(
            f"server.port {port}: another jobqueue serve listens on {host}; stop it first"
        ) from None
    return [bind(host, port, reuse_port=True, listen=False), lock]


def _run(app: FastAPI, sock: socket.socket, beat: ctypes.c_double | None = None) -> None:
    """Serve on ``sock`` until told to stop; ``beat``: set to ``time.monotonic()`` once a
    second from the event loop, for the supervisor's watchdog (processes.py)."""
    _tune_gc()
    config = uvicorn.Config(
        app,
        log_config=None,  # our logging (structlog) renders uvicorn's records too
        access_log=False,  # mutating calls are logged by audit.py, with the token's name
        timeout_graceful_shutdown=GRACE_SECONDS,
        lifespan="on",
        callback_notify=None if beat is None else _beating(beat),
        timeout_notify=0,  # uvicorn looks once a second; 0: call back each time it looks
    )
    _Server(config, app).run(sockets=[sock])


def _beating(beat: ctypes.c_double) -> Callable[[], Awaitable[None]]:
    async def notify() -> None:
        first = not beat.value
        beat.value = time.monotonic()
        if first:  # its event loop runs: from here on the watchdog counts its silences
            log.info("serving process up", pid=os.getpid())

    return notify


class _Server(uvicorn.Server):
    """uvicorn's server, which also ends the open event streams when told to stop, and
    stops on the signals the supervisor of several processes stops on (SIGHUP too, which
    killed a single process on the spot, its requests in flight with it), leaving a signal
    ignored at start (nohup) ignored."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        wanted = [sig for sig in STOP_SIGNALS if signal.getsignal(sig) is not signal.SIG_IGN]
        previous = {sig: signal.signal(sig, self.handle_exit) for sig in wanted}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        for captured in reversed(self._captured_signals):  # end by it, as uvicorn does
            signal.raise_signal(captured)

    def __init__(self, config: uvicorn.Config, app: FastAPI) -> None:
        super().__init__(config)
        self.app = app

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        parts: Parts | None = getattr(self.app.state, "parts", None)  # None before start-up
        if parts is not None:
            parts.hub.end_streams()
        super().handle_exit(sig, frame)


def _tune_gc() -> None:
    """Collect garbage for a server's heap, not a script's. A batch request makes tens of
    thousands of objects that live until it is answered; at Python's default thresholds
    (700, 10, 10) they were scanned over and over and promoted into the old generation,
    whose full collections (every code object and module, each time) took 30 % of a
    batch enqueue's time. What is loaded by now lives as long as the process: frozen, it
    is never scanned again. A young generation of 50,000 objects holds a request's jobs,
    so most die before their first collection (gc time of a 1000-job request: 11.1 s per
    930 requests before, 0.17 s after)."""
    gc.freeze()
    gc.set_threshold(50_000, 20, 10)


def _serve_process(
    settings: Settings,
    tokens: Tokens,
    host: str,
    port: int,
    metrics_dir: str,
    beat: ctypes.c_double,
) -> None:
    """One of ``server.processes`` (a fresh interpreter: processes.py spawns it)."""
    configure_logging(settings.observability.log_level, settings.observability.log_format)
    # A /tmp cleaner may have taken the folder while the server ran: counts start again
    # rather than every new process failing at start.
    os.makedirs(metrics_dir, exist_ok=True)
    app = create_app(settings, tokens, metrics_dir=metrics_dir)
    _run(app, bind(host, port, reuse_port=True), beat)


@contextlib.contextmanager
def _metrics_folder() -> Iterator[str]:
    """The folder the serving processes' metric files share, named in the environment they
    inherit (prometheus-client reads it at import); removed with its files at exit."""
    folder = tempfile.mkdtemp(prefix="jobqueue-server-metrics-")
    previous = os.environ.get(MULTIPROC_ENV)
    os.environ[MULTIPROC_ENV] = folder
    try:
        yield folder
    finally:
        if previous is None:
            os.environ.pop(MULTIPROC_ENV, None)
        else:
            os.environ[MULTIPROC_ENV] = previous
        shutil.rmtree(folder, ignore_errors=True)
