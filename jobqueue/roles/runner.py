"""Runs a role by name; filled in by the worker, reaper and producer modules."""

from __future__ import annotations

from jobqueue.config import Settings
from jobqueue.errors import UsageError


def run(role: str, settings: Settings) -> int:
    raise UsageError(f"role {role!r} is not available in this build yet")
