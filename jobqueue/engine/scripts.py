"""Loads every Lua script once and calls it by SHA (redis-py reloads it on NOSCRIPT).

Each ``lua/<name>.lua`` is one state transition, named after the Engine method that runs it,
and starts with a header giving its KEYS, ARGV and return value.
"""

from __future__ import annotations

from importlib import resources
from typing import Any

from redis.commands.core import Script

SCRIPT_NAMES = (
    "enqueue",
    "claim",
    "ack",
    "retry",
    "bury",
    "release",
    "reap",
    "promote",
    "requeue_dead",
    "register",
    "deregister",
    "take_token",
)


def script_source(name: str) -> str:
    return resources.files("jobqueue.engine").joinpath(f"lua/{name}.lua").read_text("utf-8")


class Scripts:
    """The registered scripts of one client, by name."""

    def __init__(self, client: Any) -> None:
        self._scripts: dict[str, Script] = {
            name: client.register_script(script_source(name)) for name in SCRIPT_NAMES
        }

    def __getitem__(self, name: str) -> Script:
        return self._scripts[name]
