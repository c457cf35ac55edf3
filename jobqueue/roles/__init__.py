"""The roles: thin loops over the engine. ``run_role`` is what ``--role`` calls."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from jobqueue.config import Settings


def run_role(role: str, settings: Settings) -> int:
    """Run one role until it finishes or is signalled; return the process exit code."""
    if role in ("worker", "all"):  # started already by jobqueue.launch, unless called directly
        from jobqueue.roles.worker.forkserver import worker_context  # noqa: PLC0415

        worker_context()
    from jobqueue.roles.runner import run  # noqa: PLC0415 - each role imports what it needs

    return run(role, settings)
