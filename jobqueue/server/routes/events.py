"""``GET /api/v1/events``: Server-Sent Events (events.py says which, and how late)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable
from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi.sse import EventSourceResponse, ServerSentEvent

from jobqueue.server.deps import PartsDep, Reader
from jobqueue.server.events import END

router = APIRouter(tags=["events"])

Inbox = asyncio.Queue[list[ServerSentEvent]]


async def inbox(parts: PartsDep, _caller: Reader) -> AsyncIterable[Inbox]:
    """Joined before the response starts, so a full house is a 503, not a broken stream."""
    joined = parts.hub.join()
    try:
        yield joined
    finally:
        parts.hub.leave(joined)


@router.get("/events", response_class=EventSourceResponse)
async def events(
    joined: Annotated[Inbox, Depends(inbox)], parts: PartsDep
) -> AsyncIterable[ServerSentEvent]:
    """``stats`` every server.events_interval, ``job`` per finished job, ``error`` when a
    read fails. Clients without Authorization headers (EventSource) use fetch instead."""
    try:
        while (events := await joined.get()) is not END:  # END: the server is stopping
            for event in events:
                yield event
    finally:
        parts.hub.leave(joined)
