"""``jobqueue serve``: bind, say where, run uvicorn until SIGINT or SIGTERM.

With no token configured the server binds 127.0.0.1 whatever ``server.host`` says, and logs
it: every caller would be admin. The socket is bound here, before uvicorn starts, so a port
in use is one line and exit 1 rather than uvicorn's own exit.
"""

from __future__ import annotations

import socket
from typing import Any

import uvicorn

from jobqueue.config import Settings
from jobqueue.errors import OperationalError
from jobqueue.observe.logs import get_logger
from jobqueue.server.app import create_app
from jobqueue.server.auth import Tokens

log: Any = get_logger("jobqueue.server")
LOOPBACK = "127.0.0.1"


def bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise OperationalError(
            f"server.port {port}: cannot listen on {host}: {exc.strerror or exc}"
        ) from exc
    sock.listen(2048)
    sock.set_inheritable(True)
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
    sock = bind(host, settings.server.port)
    port = sock.getsockname()[1]
    names = {caller.name: caller.role for _, caller in tokens.entries}
    log.info(
        f"serving the API and dashboard on http://{host}:{port}/",
        tokens=names,
        host=host,
        port=port,
    )
    config = uvicorn.Config(
        create_app(settings, tokens),
        log_config=None,  # our logging (structlog) renders uvicorn's records too
        access_log=False,  # mutating calls are logged by audit.py, with the token's name
        timeout_graceful_shutdown=5,
        lifespan="on",
    )
    uvicorn.Server(config).run(sockets=[sock])
    return 0
