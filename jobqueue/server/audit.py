"""One log line per mutating call (POST, PUT, PATCH, DELETE): method, path, status, the
name of the token that made it (never its value), and the serving process (``pid``: one of
``server.processes``). A pure ASGI middleware, so it costs one function call per request
and sees the status of every answer, refusals included."""

from __future__ import annotations

import os
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from jobqueue.observe.logs import get_logger

log: Any = get_logger("jobqueue.server.audit")
MUTATING = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class AuditMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in MUTATING:
            await self.app(scope, receive, send)
            return
        status = 500

        async def keep_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, keep_status)
        finally:
            caller = scope.get("state", {}).get("caller")
            log.info(
                "api call",
                method=scope["method"],
                path=scope["path"],
                status=status,
                token=caller.name if caller is not None else None,
                role=caller.role if caller is not None else None,
                pid=os.getpid(),
            )
