"""The only package that knows Redis: key schema, Lua scripts, connections, operations."""

from jobqueue.engine.inspect import Entry, Inspector, QueueCounts, Stats
from jobqueue.engine.queue import (
    ConnectionLost,
    Engine,
    EngineLimits,
    Outcome,
    ReapResult,
    RedisError,
    RetryPolicy,
)

__all__ = [
    "ConnectionLost",
    "Engine",
    "EngineLimits",
    "Entry",
    "Inspector",
    "Outcome",
    "QueueCounts",
    "ReapResult",
    "RedisError",
    "RetryPolicy",
    "Stats",
]
