"""The process's HTTP endpoint: ``/metrics``, ``/healthz`` and ``/readyz``, in daemon threads.

- ``/metrics``: prometheus-client's own WSGI app over the registry: text format, or
  OpenMetrics when asked for, gzip when the scraper accepts it, ``?name[]=`` filtering.
- ``/healthz``: 200 while the process runs (the server thread answering is the proof).
- ``/readyz``: 200 only while ``ready()`` returns True within ``ready_timeout`` seconds;
  503 otherwise (False, an exception, or no answer in time). At most one check runs at a
  time: concurrent probes share it, and a hung check never piles up threads.

Every route answers GET and HEAD (the headers GET would send, Content-Length included, and
no body; prometheus-client's app answers GET only, so the router turns HEAD into a GET and
drops the body). This module knows nothing of Redis: the role passes ``ready`` (a PING
through the engine).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from types import TracebackType
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, make_server
from wsgiref.types import StartResponse, WSGIEnvironment

from prometheus_client import CollectorRegistry, make_wsgi_app
from prometheus_client.exposition import ThreadingWSGIServer

from jobqueue.errors import OperationalError

DEFAULT_READY_TIMEOUT = 1.0
PLAIN = [("Content-Type", "text/plain; charset=utf-8"), ("Cache-Control", "no-store")]
Response = tuple[str, list[tuple[str, str]], bytes]


class _Check:
    """One run of the readiness callable on its own daemon thread."""

    def __init__(self, ready: Callable[[], bool]) -> None:
        self.done = threading.Event()
        self.result = False
        self._ready = ready
        threading.Thread(target=self._run, name="jobqueue-readyz", daemon=True).start()

    def _run(self) -> None:
        try:
            self.result = bool(self._ready())
        except Exception:  # a failing check means "not ready", never a crashed endpoint
            self.result = False
        finally:
            self.done.set()

    def outcome(self, timeout: float) -> bool:
        return self.done.wait(timeout) and self.result


class ReadyProbe:
    """``ready()`` with a deadline; a check still running is shared, not repeated."""

    def __init__(self, ready: Callable[[], bool], timeout: float = DEFAULT_READY_TIMEOUT):
        self.ready = ready
        self.timeout = timeout
        self._lock = threading.Lock()
        self._running: _Check | None = None

    def __call__(self) -> bool:
        with self._lock:
            if self._running is None or self._running.done.is_set():
                self._running = _Check(self.ready)
            check = self._running
        return check.outcome(self.timeout)


class Router:
    """The WSGI app: /metrics to prometheus-client's app, the probes beside it."""

    def __init__(self, registry: CollectorRegistry, probe: ReadyProbe) -> None:
        self.metrics = make_wsgi_app(registry)
        self.probe = probe

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> list[bytes]:
        method = environ["REQUEST_METHOD"]
        if method not in ("GET", "HEAD"):
            status, headers, body = "405 Method Not Allowed", [*PLAIN, ("Allow", "GET, HEAD")], b""
        else:
            status, headers, body = self._get({**environ, "REQUEST_METHOD": "GET"})
        headers = [(k, v) for k, v in headers if k.lower() != "content-length"]
        start_response(status, [*headers, ("Content-Length", str(len(body)))])
        return [] if method == "HEAD" else [body]

    def _get(self, environ: WSGIEnvironment) -> Response:
        path = environ.get("PATH_INFO", "")
        if path == "/metrics":
            return self._metrics(environ)
        if path == "/healthz":
            return "200 OK", PLAIN, b"ok\n"
        if path == "/readyz":
            if self.probe():
                return "200 OK", PLAIN, b"ready\n"
            return "503 Service Unavailable", PLAIN, b"not ready\n"
        return "404 Not Found", PLAIN, b"not found: try /metrics, /healthz or /readyz\n"

    def _metrics(self, environ: WSGIEnvironment) -> Response:
        answer: dict[str, Any] = {}

        def keep(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            answer.update(status=status, headers=headers)

        body = b"".join(self.metrics(environ, keep))
        return answer["status"], answer["headers"], body


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """Scrapes and probes are too frequent to log."""


class ObservabilityServer:
    """The endpoint on ``host:port`` (port 0 picks a free one: read ``.port``)."""

    def __init__(
        self,
        registry: CollectorRegistry,
        ready: Callable[[], bool],
        host: str = "0.0.0.0",
        port: int = 0,
        ready_timeout: float = DEFAULT_READY_TIMEOUT,
    ) -> None:
        self.registry = registry
        self.probe = ReadyProbe(ready, ready_timeout)
        self.host = host
        self.requested_port = port
        self._server: ThreadingWSGIServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        """The bound port (after ``start``)."""
        if self._server is None:
            raise RuntimeError("server not started")
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        host = "127.0.0.1" if self.host in ("0.0.0.0", "", "::") else self.host
        return f"http://{host}:{self.port}"

    def start(self) -> ObservabilityServer:
        try:
            self._server = make_server(
                self.host,
                self.requested_port,
                Router(self.registry, self.probe),
                server_class=ThreadingWSGIServer,
                handler_class=_QuietHandler,
            )
        except OSError as exc:
            raise OperationalError(
                f"observability.metrics_port {self.requested_port}: cannot listen on "
                f"{self.host}: {exc.strerror or exc}"
            ) from exc
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.2},
            name="jobqueue-metrics",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = self._thread = None

    def __enter__(self) -> ObservabilityServer:
        return self if self._server is not None else self.start()

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def start_server(
    registry: CollectorRegistry,
    ready: Callable[[], bool],
    host: str,
    port: int,
    ready_timeout: float = DEFAULT_READY_TIMEOUT,
) -> ObservabilityServer | None:
    """Start the endpoint as configured (``observability.metrics_host/metrics_port``);
    port 0 in the config means off, so this returns None for it."""
    if port == 0:
        return None
    return ObservabilityServer(registry, ready, host, port, ready_timeout).start()
