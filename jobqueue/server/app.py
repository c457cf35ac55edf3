"""Build the FastAPI app: the API under /api/v1, /metrics and the probes, the dashboard at /
(its files under /static). The dashboard is not mounted at /: a mount there answered every
path the routes did not, so an unknown API path was a 405 and a wrong method a 404.

``create_app`` takes the settings and the tokens and owns nothing until its lifespan starts:
then it opens one ``Client`` (one connection pool for every route and the event poller),
starts the event hub's poller and the queue sampler behind /metrics, and closes them at
shutdown. Tests run it in-process (httpx's ASGI transport); ``jobqueue serve`` under uvicorn.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from importlib.resources import files
from pathlib import Path

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

from jobqueue import __version__
from jobqueue.client import Client
from jobqueue.config import Settings
from jobqueue.observe.metrics import Metrics
from jobqueue.observe.server import ReadyProbe
from jobqueue.roles.sampler import redis_ready, start_sampler
from jobqueue.server import errors
from jobqueue.server.audit import AuditMiddleware
from jobqueue.server.auth import Authenticate, Tokens
from jobqueue.server.deps import Parts
from jobqueue.server.events import EventHub, Watcher
from jobqueue.server.limits import BodyLimit
from jobqueue.server.loopback import LoopbackOnly
from jobqueue.server.models import documented
from jobqueue.server.routes import dlq, events, jobs, ops, queues
from jobqueue.server.sender import Sender

API = "/api/v1"
STATIC = Path(str(files("jobqueue.server") / "static"))


def _parts(settings: Settings, tokens: Tokens, metrics_dir: str | None) -> Parts:
    client = Client(settings=settings)
    metrics = Metrics()
    metrics.declare_queues(settings.worker.queue_of(p) for p in settings.worker.priorities)
    exposed = metrics.registry if metrics_dir is None else metrics.shared_registry(metrics_dir)
    watcher = Watcher(client.engine, settings, settings.server.events_interval)
    hub = EventHub(watcher.read, settings.server.events_interval, settings.server.max_event_clients)
    probe = ReadyProbe(redis_ready(client.engine))
    return Parts(settings, client, tokens, hub, Sender(client), metrics, exposed, probe)


def create_app(
    settings: Settings, tokens: Tokens | None = None, metrics_dir: str | None = None
) -> FastAPI:
    """The app for these settings (tokens: from ``settings.server`` unless given).
    ``metrics_dir``: the folder of prometheus-client's multiprocess mode when this is one of
    several processes serving the port (serve.py); /metrics then counts them all."""
    tokens = tokens if tokens is not None else Tokens.from_config(settings.server)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        parts = app.state.parts = _parts(settings, tokens, metrics_dir)
        poller = asyncio.create_task(parts.hub.run(), name="jobqueue-events")
        sampler = start_sampler(settings, parts.client.engine, parts.metrics)
        try:
            yield
        finally:
            poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await poller
            if sampler is not None:
                sampler.close()
            parts.client.close()

    app = FastAPI(
        title="jobqueue",
        version=__version__,
        summary="Enqueue, inspect and repair jobqueue's queues; docs/api.md",
        openapi_url=f"{API}/openapi.json",
        docs_url=None,  # Swagger UI and ReDoc load from a CDN; the dashboard works offline
        redoc_url=None,
        lifespan=lifespan,
    )
    errors.install(app)
    for router in (jobs.router, queues.router, dlq.router, events.router):
        app.include_router(router, prefix=API, responses=documented(401, 403, 422, 503))
    app.include_router(ops.router)
    app.add_middleware(BodyLimit, max_bytes=settings.server.max_body_bytes)
    app.add_middleware(Authenticate, tokens=tokens)
    if tokens.open:
        app.add_middleware(LoopbackOnly)  # inside the audit: its refusals are logged too
    app.add_middleware(AuditMiddleware)
    if settings.server.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.server.cors_origins,
            allow_methods=["GET", "POST", "DELETE"],
            allow_headers=["Authorization", "Content-Type"],
        )
    app.mount("/static", StaticFiles(directory=STATIC), name="dashboard")

    @app.api_route("/", methods=["GET", "HEAD"], include_in_schema=False)
    async def dashboard() -> FileResponse:
        return FileResponse(STATIC / "index.html")

    return app
