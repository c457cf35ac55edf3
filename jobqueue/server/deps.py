"""What a request needs, as FastAPI dependencies: the server's shared parts and the caller.

``Bearer(role)`` is the role check: the caller, identified from its bearer token before
the body was read (auth.Authenticate: 401), must have at least that role, else 403 in the
API's error shape. With no token configured every caller is admin (the server then listens
on 127.0.0.1 only: serve.py). The caller is on the request (``request.state.caller``) for
the audit line of a mutating call (audit.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPBearer
from prometheus_client import CollectorRegistry

from jobqueue.client import Client
from jobqueue.config import ServerRole, Settings
from jobqueue.observe.metrics import Metrics
from jobqueue.observe.server import ReadyProbe
from jobqueue.server.auth import Caller, Tokens
from jobqueue.server.errors import ApiError
from jobqueue.server.events import EventHub
from jobqueue.server.sender import Sender


@dataclass(frozen=True, slots=True)
class Parts:
    """The server's long-lived parts, one set per process (app.state.parts)."""

    settings: Settings
    client: Client  # its engine (one connection pool) serves every route and the poller
    tokens: Tokens
    hub: EventHub
    sender: Sender
    metrics: Metrics
    exposed: CollectorRegistry  # what /metrics shows: metrics.registry, or every process's
    probe: ReadyProbe


def shared_parts(request: Request) -> Parts:
    found: Parts = request.app.state.parts
    return found


async def parts(request: Request) -> Parts:
    """Async, as every dependency here: FastAPI runs a plain ``def`` dependency in its
    thread pool, a thread hop per request that cost more than the whole enqueue."""
    return shared_parts(request)


PartsDep = Annotated[Parts, Depends(parts)]


class Bearer(HTTPBearer):
    """The role check of a route, and the OpenAPI document's bearer scheme: one dependency,
    not a check over FastAPI's ``HTTPBearer`` (each level of dependencies cost a request
    ~30 us of FastAPI's own bookkeeping, an eighth of a single-job enqueue). The caller
    was identified before the body was read (auth.Authenticate: 401)."""

    def __init__(self, role: ServerRole) -> None:
        super().__init__(
            auto_error=False,
            scheme_name="HTTPBearer",  # one scheme in the document for every role
            description="A token of server.tokens or token_file.",
        )
        self.role: ServerRole = role

    async def __call__(self, request: Request) -> Caller:  # type: ignore[override]
        caller: Caller = request.state.caller
        if not caller.may(self.role):
            raise ApiError(
                403,
                f"token {caller.name!r} has role {caller.role}; this needs {self.role} or above",
            )
        return caller


Reader = Annotated[Caller, Depends(Bearer("read"))]
Enqueuer = Annotated[Caller, Depends(Bearer("enqueue"))]
Admin = Annotated[Caller, Depends(Bearer("admin"))]
