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
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from types import TracebackType

from tests.redis_server import free_port


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
        await asyncio.gather(
            self._pump(client_r, server_w, delayed=False),
            self._pump(server_r, client_w, delayed=True),
        )

    async def _pump(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, delayed: bool
    ) -> None:
        with contextlib.suppress(OSError):
            while chunk := await reader.read(65536):
                if delayed and self.delayed_replies > 0:
                    self.delayed_replies -= 1
                    await asyncio.sleep(self.reply_delay)
                while self.blackhole:
                    await asyncio.sleep(0.01)
                if self.latency:
                    await asyncio.sleep(self.latency)
                pieces = [chunk[i : i + 1] for i in range(len(chunk))] if self.slicing else [chunk]
                for piece in pieces:
                    writer.write(piece)
                    await writer.drain()
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
