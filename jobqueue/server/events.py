"""Server-Sent Events: one poller per server process, whatever the number of clients.

Every ``server.events_interval`` while at least one client listens, ``Watcher.read`` makes
one pass over Redis through the admin layer: the ``admin stats`` overview (queues, workers,
breakers) and, when the per-queue ``completed`` or ``dead`` counters rose, the newest
entries of those lists. It turns the difference from the last pass into events, serialized
once, and ``EventHub`` hands the same objects to every client. No Redis write and no pub/sub
on the engine's hot path: job events are derived here, so they arrive up to one interval
(plus the read) after the change.

Events (``event:`` name, ``data:`` JSON):

    stats   every pass: ``at``, ``stats`` (admin stats --json), ``workers`` (admin workers
            rows), ``rates`` (per second since the last pass: enqueued, completed,
            dead_letter; null on a first pass) and ``changes`` (counts since the last pass)
    job     one per job finished since the last pass, newest first: id, priority, queue,
            state (completed or dead_letter), last_error. At most JOB_EVENTS_MAX per queue and
            kind per pass (the counts in ``changes`` are exact); a dead-letter list longer
            than admin.commands.NEWEST_DEAD_READ_MAX gives counts only
    error   a pass failed (Redis unreachable): ``message``; the stream stays open
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import anyio.to_thread
from fastapi.sse import ServerSentEvent

from jobqueue.admin.commands import Peeked, newest, overview
from jobqueue.config import Settings
from jobqueue.engine import Engine
from jobqueue.job import json_object
from jobqueue.observe.logs import get_logger
from jobqueue.server.errors import ApiError

log: Any = get_logger("jobqueue.server.events")

JOB_EVENTS_MAX = 100  # per queue and kind per pass
INBOX_PASSES = 16  # a client that falls this many passes behind loses the oldest
COUNTERS = {"enqueued": "enqueued", "completed": "completed", "dead_letter": "dead"}
Counts = dict[str, dict[str, int]]  # kind -> priority -> count


def sse(event: str, doc: Any) -> ServerSentEvent:
    return ServerSentEvent(event=event, raw_data=json.dumps(doc, separators=(",", ":")))


def _job_event(peeked: Peeked, state: str) -> ServerSentEvent:
    doc = json_object(peeked.entry.raw)
    return sse(
        "job",
        {
            "id": doc.get("id"),
            "priority": peeked.priority,
            "queue": peeked.entry.queue,
            "state": state,
            "last_error": doc.get("last_error", ""),
        },
    )


class Watcher:
    """Reads a pass and says what changed since the last one (called from one thread)."""

    def __init__(self, engine: Engine, settings: Settings, interval: float) -> None:
        self.engine = engine
        self.settings = settings
        self.interval = interval
        self._last: tuple[float, Counts] | None = None

    def read(self) -> list[ServerSentEvent]:
        view = overview(self.engine, self.settings, with_jobs=True)
        now = time.monotonic()
        counts = {
            kind: {p: q.counters.get(field, 0) for p, q in view.stats.queues.items()}
            for kind, field in COUNTERS.items()
        }
        last, self._last = self._last, (now, counts)
        fresh = last is not None and now - last[0] < 3 * self.interval
        changes: Counts = {kind: {} for kind in COUNTERS}
        rates: dict[str, float] | None = None
        if last is not None and fresh:
            elapsed = max(now - last[0], 1e-3)
            changes = {
                kind: {p: max(0, n - last[1][kind].get(p, 0)) for p, n in per.items()}
                for kind, per in counts.items()
            }
            rates = {k: round(sum(c.values()) / elapsed, 2) for k, c in changes.items()}
        events = self._job_events(changes)
        doc = {
            "at": datetime.now(UTC).isoformat(timespec="milliseconds"),
            "stats": view.as_json(),
            "workers": [row.as_json() for row in view.workers],
            "rates": rates,
            "changes": {kind: sum(per.values()) for kind, per in changes.items()},
        }
        return [*events, sse("stats", doc)]

    def _job_events(self, changes: Counts) -> list[ServerSentEvent]:
        events = []
        for kind in ("completed", "dead_letter"):
            wanted = {p: min(n, JOB_EVENTS_MAX) for p, n in changes[kind].items() if n}
            if wanted:
                found = newest(self.engine, self.settings, kind, wanted)
                events += [_job_event(peeked, kind) for peeked in found]
        return events


END: list[ServerSentEvent] = []  # put in every inbox when the server stops: the stream ends


class EventHub:
    """The clients' inboxes, and the poller that fills them while any is open."""

    def __init__(
        self, read: Callable[[], list[ServerSentEvent]], interval: float, max_clients: int
    ) -> None:
        self.read = read
        self.interval = interval
        self.max_clients = max_clients
        self.clients: set[asyncio.Queue[list[ServerSentEvent]]] = set()
        self._latest: list[ServerSentEvent] = []  # the last stats event, for a newcomer
        self._wanted = asyncio.Event()
        self._failing = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ended = False

    def join(self) -> asyncio.Queue[list[ServerSentEvent]]:
        """A new client's inbox (503 when ``server.max_event_clients`` are connected, or
        when the server is stopping)."""
        if self._ended:
            raise ApiError(503, "the server is stopping: connect again in a moment")
        if len(self.clients) >= self.max_clients:
            raise ApiError(
                503,
                f"{len(self.clients)} event streams are open, the most server.max_event_clients "
                "allows: close one, or raise it",
            )
        inbox: asyncio.Queue[list[ServerSentEvent]] = asyncio.Queue(INBOX_PASSES)
        if self._latest:
            inbox.put_nowait(self._latest)
        self.clients.add(inbox)
        self._wanted.set()
        return inbox

    def leave(self, inbox: asyncio.Queue[list[ServerSentEvent]]) -> None:
        self.clients.discard(inbox)
        if not self.clients:  # the poller rests; its last figures would be stale by then
            self._wanted.clear()
            self._latest = []

    def end_streams(self) -> None:
        """End every open stream and refuse new ones: an event stream never finishes by
        itself, and a stopping server waits for its responses (uvicorn: its whole grace,
        then cancels them with an error line). Safe from a signal handler or a thread."""
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._end)

    def _end(self) -> None:
        self._ended = True
        for inbox in self.clients:
            if inbox.full():
                inbox.get_nowait()
            inbox.put_nowait(END)

    async def run(self) -> None:
        """Poll while anyone listens; runs until cancelled (the app's lifespan)."""
        self._loop = asyncio.get_running_loop()
        while True:
            await self._wanted.wait()
            self.publish(await self._pass())
            await asyncio.sleep(self.interval)

    async def _pass(self) -> list[ServerSentEvent]:
        try:
            events = await anyio.to_thread.run_sync(self.read)
        except Exception as exc:  # Redis gone: say so on the stream, keep polling
            if not self._failing:
                log.warning("event poll failed; will retry", error=str(exc))
            self._failing = True
            return [sse("error", {"message": f"cannot read the queues: {exc}"})]
        if self._failing:
            log.info("event poll recovered")
        self._failing = False
        self._latest = [event for event in events if event.event == "stats"]
        return events

    def publish(self, events: list[ServerSentEvent]) -> None:
        for inbox in self.clients:
            if inbox.full():
                inbox.get_nowait()
            inbox.put_nowait(events)
