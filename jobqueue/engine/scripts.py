"""Loads every Lua script once and calls it by SHA (reloaded on NOSCRIPT).

Each ``lua/<name>.lua`` is one state transition, named after the Engine method that runs it,
and starts with a header giving its KEYS, ARGV and return value. ``lua/lib.lua`` (local
helper functions) is put in front of each when it is loaded, so a helper is written once.
"""

from __future__ import annotations

from importlib import resources
from typing import Any

from redis.commands.core import Script

SCRIPT_NAMES = (
    "enqueue",
    "claim",
    "start",
    "ack",
    "retry",
    "bury",
    "release",
    "reap",
    "promote",
    "requeue_dead",
    "register",
    "grant",
    "publish",
    "deregister",
    "take_token",
    "withdraw",
    "run_now",
    "drop_dead",
)


def lua_file(name: str) -> str:
    """One file of ``lua/`` as written (``lib`` or a transition)."""
    return resources.files("jobqueue.engine").joinpath(f"lua/{name}.lua").read_text("utf-8")


def script_source(name: str) -> str:
    """The script as Redis runs it: the shared helpers, then the transition."""
    return lua_file("lib") + lua_file(name)


class Scripts:
    """The registered scripts of one client, by name."""

    def __init__(self, client: Any) -> None:
        self._scripts: dict[str, Script] = {
            name: client.register_script(script_source(name)) for name in SCRIPT_NAMES
        }

    def __getitem__(self, name: str) -> Script:
        return self._scripts[name]
