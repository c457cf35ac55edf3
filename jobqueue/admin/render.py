"""Terminal and JSON presentation; the only module besides ``top`` that imports rich."""

from __future__ import annotations

import json
import sys
from typing import Any

from rich.console import Console
from rich.table import Table

from jobqueue.engine import Stats


def print_json(document: Any) -> None:
    """One JSON document on stdout and nothing else (scripts parse it)."""
    sys.stdout.write(json.dumps(document, indent=2, sort_keys=True, default=str) + "\n")
    sys.stdout.flush()


def stdout_console() -> Console:
    return Console(highlight=False, soft_wrap=False)


def stderr_console() -> Console:
    return Console(stderr=True, highlight=False)


def stats_table(stats: Stats) -> Table:
    table = Table(title="jobqueue", title_justify="left")
    for column in ("queue", "pending", "scheduled", "processing", "completed", "dead"):
        table.add_column(column, justify="left" if column == "queue" else "right")
    for name, q in stats.queues.items():
        table.add_row(
            name,
            *(str(v) for v in (q.pending, q.scheduled, q.processing, q.completed, q.dead_letter)),
        )
    table.caption = f"live workers: {stats.workers}   registered: {stats.registered}"
    return table


def render_stats(stats: Stats) -> None:
    stdout_console().print(stats_table(stats))


def print_error(message: str) -> None:
    """The one line an operator sees for a failure; no traceback."""
    sys.stderr.write(f"error: {message}\n")
    sys.stderr.flush()
