"""The ``jobqueue`` command's entry point.

A worker's fork server (roles/worker/forkserver.py) preloads the worker modules, which takes
about as long as the CLI takes to import (~0.5 s each). Started here, before the CLI is
imported, the two overlap, and the first worker process starts that much sooner. Nothing
else happens before the CLI parses the command line: a bad config still exits 2, and the
fork server goes with this process.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

ROLES_WITH_WORKERS = ("worker", "all")


def main() -> None:
    if role_of(sys.argv[1:]) in ROLES_WITH_WORKERS:
        from jobqueue.roles.worker.forkserver import worker_context  # noqa: PLC0415

        worker_context()
    from jobqueue.cli import main as cli_main  # noqa: PLC0415 - after the fork server starts

    cli_main()


def role_of(args: Sequence[str]) -> str | None:
    """The ``--role`` value in ``args`` as the CLI will read it, or None."""
    for position, arg in enumerate(args):
        if arg == "--":
            break
        if arg.startswith("--role="):
            return arg.partition("=")[2]
        if arg == "--role" and position + 1 < len(args):
            return args[position + 1]
    return None
