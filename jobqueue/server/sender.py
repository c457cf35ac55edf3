"""Enqueues of concurrent requests coalesced into one ``Client.send`` per round trip.

Each request's jobs are checked (``Client.prepare``) in its own request, then handed here.
While one round trip is in flight, the jobs of the requests that arrive meanwhile wait and
go together in the next one: an idle server sends at once (no timer, no added latency), a
busy one sends one pipelined round trip for many requests instead of one each, which is
what lets single-job requests reach thousands per second (docs/api.md, "Load").

A round trip that fails (Redis unreachable, or refusing writes) fails every request in it:
each answers 503 and none is told its jobs went in (they may have; an idempotency key or a
job_id makes the retry safe, as with ``Client.enqueue``).
"""

from __future__ import annotations

import asyncio
from collections import defaultdict

import anyio.to_thread

from jobqueue.client import Client, Prepared

Waiting = tuple[list[Prepared], float, "asyncio.Future[list[bool]]"]


class Sender:
    def __init__(self, client: Client) -> None:
        self.client = client
        self._waiting: list[Waiting] = []
        self._draining = False

    async def send(self, prepared: list[Prepared], delay: float) -> list[bool]:
        """``Client.send(prepared, delay=delay)``, sharing a round trip with other requests."""
        future: asyncio.Future[list[bool]] = asyncio.get_running_loop().create_future()
        self._waiting.append((prepared, delay, future))
        if not self._draining:
            self._draining = True
            asyncio.get_running_loop().create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        try:
            while self._waiting:
                taken, self._waiting = self._waiting, []
                try:
                    results = await anyio.to_thread.run_sync(self._send, taken)
                except Exception as exc:
                    for _, _, future in taken:
                        if not future.done():
                            future.set_exception(exc)
                    continue
                for (_, _, future), result in zip(taken, results, strict=True):
                    if not future.done():
                        future.set_result(result)
        finally:
            self._draining = False

    def _send(self, taken: list[Waiting]) -> list[list[bool]]:
        """One ``Client.send`` per distinct delay (usually one), results split back."""
        by_delay: dict[float, list[Prepared]] = defaultdict(list)
        for prepared, delay, _ in taken:
            by_delay[delay] += prepared
        sent = {
            delay: iter(self.client.send(jobs, delay=delay)) for delay, jobs in by_delay.items()
        }
        return [[next(sent[delay]) for _ in prepared] for prepared, delay, _ in taken]
