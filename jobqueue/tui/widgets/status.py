"""The status line: which Redis (credentials redacted), its version and memory, connected
or not, and the time of the last good sample. When a sample fails the line turns red and
says the figures on screen are stale and how old they are: never shown as current."""

from __future__ import annotations

from datetime import datetime

from textual.widgets import Static

from jobqueue.admin import render
from jobqueue.admin.commands import ServerInfo


def clock(wall: float) -> str:
    return datetime.fromtimestamp(wall).strftime("%H:%M:%S")


class StatusLine(Static):
    DEFAULT_CSS = """
    StatusLine { height: auto; padding: 0 1; background: $panel; }
    StatusLine.-down { background: $error; color: $text; text-style: bold; }
    """

    def connected(self, address: str, server: ServerInfo, at: float, filter_: str) -> None:
        self.remove_class("-down")
        memory = render.fmt_bytes(server.used_memory)
        line = f"● connected · {address} · Redis {server.version} · {memory} · at {clock(at)}"
        self.update(line + (f" · filter: {filter_}" if filter_ else ""))

    def disconnected(self, error: str, last: float | None, now: float) -> None:
        """``error`` names the address already (``RedisUnavailable``'s one line)."""
        self.add_class("-down")
        if last is None:
            self.update(f"✖ disconnected · {error} · no data yet; retrying")
            return
        age = render.fmt_age(now - last)
        self.update(
            f"✖ disconnected · STALE: figures from {clock(last)} ({age} ago) · {error}; retrying"
        )
