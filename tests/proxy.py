"""A small TCP proxy for putting network faults between a client and a real Redis.

asyncio in a thread of its own: each accepted connection gets an upstream connection and
two pumps. The faults, each switched on and off from the test's thread:

- ``delay_replies(seconds, n)`` holds the next ``n`` chunks the server sends for that long:
  the server has run the command, the client hears of it late (a slow network or an
  overloaded host, seen from the client);
- ``latency``: seconds added to every chunk, both ways;
- ``slicing``: every chunk forwarded one byte at a time (a parser must cope with any split);
- ``blackhole``: nothing is forwarded, connections stay open and new ones are accepted
  (a partition: packets vanish, no RST); what was held flows on when it ends;
- ``reset()``: every open connection aborted at once (RST), as a restarted middlebox does.

It also measures how long clients waited: a connection waits from the moment the proxy gets
a request on it with nothing outstanding until the first reply bytes reach the client, or
until the client gives up and closes it (redis-py does so at its socket timeout).
``longest_wait()`` is the longest such wait, ended or still going: the longest any client
thread was blocked on one Redis call.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from types import TracebackType

from tests.redis_server import free_port


class _Link:
    """One client connection's wait for a reply."""

    def __init__(self, proxy: Proxy) -> None:
        self.proxy = proxy
        self.waiting_since: float | None = None
        self.ended = False

    def asked(self, now: float) -> None:
        if self.waiting_since is None:
            self.waiting_since = now

    def answered(self) -> None:
        self.waiting_since = None

    def end(self, now: float) -> None:
        """The client closed the connection (or it was reset): its wait, if any, is over."""
        if not self.ended and self.waiting_since is not None:
            self.proxy.waits.append(now - self.waiting_since)
        self.ended = True


class Proxy:
    def __init__(self, target_port: int, target_host: str = "127.0.0.1") -> None:
        self.target = (target_host, target_port)
        self.port = free_port()
        self.reply_delay = 0.0
        self.delayed_replies = 0
        self.latency = 0.0
        self.slicing = False
        self.blackhole = False
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="test-proxy", daemon=True)
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._links: list[_Link] = []
        self.waits: list[float] = []  # seconds of each ended wait (see the module docstring)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._server = self._loop.run_until_complete(
            asyncio.start_server(self._handle, "127.0.0.1", self.port)
        )
        self._ready.set()
        self._loop.run_forever()

    async def _handle(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        self._writers.add(client_w)
        try:
            server_r, server_w = await asyncio.open_connection(*self.target)
        except OSError:
            client_w.close()
            return
        self._writers.add(server_w)
        link = _Link(self)
        self._links.append(link)
        await asyncio.gather(
            self._pump(client_r, server_w, link, reply=False),
            self._pump(server_r, client_w, link, reply=True),
        )

    async def _pump(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        link: _Link,
        reply: bool,
    ) -> None:
        clock = self._loop.time
        with contextlib.suppress(OSError):
            while chunk := await reader.read(65536):
                if not reply:
                    link.asked(clock())
                if reply and self.delayed_replies > 0:
                    self.delayed_replies -= 1
                    await asyncio.sleep(self.reply_delay)
                while self.blackhole:
                    if not reply and reader.at_eof():  # the client gave up meanwhile
                        link.end(clock())
                    await asyncio.sleep(0.01)
                if self.latency:
                    await asyncio.sleep(self.latency)
                pieces = [chunk[i : i + 1] for i in range(len(chunk))] if self.slicing else [chunk]
                for piece in pieces:
                    writer.write(piece)
                    await writer.drain()
                if reply:
                    link.answered()
        if not reply:
            link.end(clock())
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()

    def reset(self) -> None:
        """Abort every open connection (clients see a reset and connect again)."""

        def abort() -> None:
            for writer in list(self._writers):
                writer.transport.abort()
            self._writers.clear()

        self._loop.call_soon_threadsafe(abort)

    def longest_wait(self) -> float:
        """Seconds of the longest wait for a reply so far, ended or still going."""
        now = self._loop.time()
        going = [
            now - link.waiting_since
            for link in self._links
            if not link.ended and link.waiting_since is not None
        ]
        return max([*self.waits, *going], default=0.0)

    def delay_replies(self, seconds: float, count: int = 1) -> None:
        self.reply_delay, self.delayed_replies = seconds, count

    def __enter__(self) -> Proxy:
        self._thread.start()
        self._ready.wait(5)
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        async def close() -> None:
            if self._server is not None:
                self._server.close()
                await self._server.wait_closed()
            for writer in self._writers:  # every pump then reads EOF and ends
                writer.close()
            others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            await asyncio.gather(*others, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(close(), self._loop).result(5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()
