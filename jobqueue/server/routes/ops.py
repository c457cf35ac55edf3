"""``/metrics`` (prometheus-client's exposition, read role), ``/healthz`` and ``/readyz``
(no token: probes)."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.concurrency import run_in_threadpool
from prometheus_client.exposition import choose_encoder

from jobqueue.server.deps import PartsDep, Reader
from jobqueue.server.errors import ApiError
from jobqueue.server.models import Health, documented

router = APIRouter(tags=["operations"])


@router.get(
    "/metrics",
    response_class=Response,
    responses={
        200: {"content": {"text/plain": {}}, "description": "Prometheus' text format"},
        **documented(401, 403),
    },
)
def metrics(request: Request, parts: PartsDep, _caller: Reader) -> Response:
    """The queue gauges (sampled every observability.queue_sample_interval) and the jobs
    this server enqueued, in Prometheus' text format (OpenMetrics when asked for)."""
    encoder, content_type = choose_encoder(request.headers.get("accept", ""))
    return Response(encoder(parts.exposed), media_type=content_type)


@router.get("/healthz")
async def healthz() -> Health:
    """200 while the process serves."""
    return Health(status="ok")


@router.get("/readyz", responses=documented(503))
async def readyz(parts: PartsDep) -> Health:
    """200 while Redis answers a PING within a second, else 503."""
    if not await run_in_threadpool(parts.probe):
        raise ApiError(503, "Redis did not answer a PING within 1s")
    return Health(status="ready")
