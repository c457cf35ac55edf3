"""The only package that knows Redis: key schema, Lua scripts, connections, operations."""

from jobqueue.engine.batch import Batch, Call, ClaimReply, NotReplicated, Outcome
from jobqueue.engine.connection import BACKOFF_CAP, Outage, Reconnect, jittered_backoff
from jobqueue.engine.inspect import Entry, Inspector, QueueCounts, Stats
from jobqueue.engine.queue import (
    ConnectionLost,
    Engine,
    EngineLimits,
    EnqueueRefused,
    Held,
    ReapResult,
    RedisError,
    RetryPolicy,
)
from jobqueue.engine.records import STATES, JobRecord, State
from jobqueue.engine.registry import Lease, Registry, token_of

__all__ = [
    "BACKOFF_CAP",
    "STATES",
    "Batch",
    "Call",
    "ClaimReply",
    "ConnectionLost",
    "Engine",
    "EngineLimits",
    "EnqueueRefused",
    "Entry",
    "Held",
    "Inspector",
    "JobRecord",
    "Lease",
    "NotReplicated",
    "Outage",
    "Outcome",
    "QueueCounts",
    "ReapResult",
    "Reconnect",
    "RedisError",
    "Registry",
    "RetryPolicy",
    "State",
    "Stats",
    "jittered_backoff",
    "token_of",
]
