"""Logging: structlog everywhere, JSON when stderr is not a terminal, console when it is.

Standard-library loggers (redis-py, urllib3, ...) are rendered through the same processors,
so an operator reads one format. Every line names the part that wrote it (``component``).
Every line about a job carries the same fields (job_id, queue, worker, filepath, attempt,
trace_id: roles/worker/tickets.py ``job_fields``); the worker binds them with contextvars
while a handler runs, so the handler's own lines carry them too.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from typing import Any, TextIO, cast

import structlog

LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}


ERROR_CHARS = 500  # an error in a log line: its start (type, message) and its end (stderr)


def clip(text: str, limit: int = ERROR_CHARS) -> str:
    """``text`` cut to about ``limit`` characters around a marker saying how many went: the
    start names the error (type and message), the end often says why (an exec handler's
    stderr tail), so both stay."""
    if len(text) <= limit:
        return text
    head = limit * 2 // 5
    tail = limit - head
    return f"{text[:head]} …[{len(text) - head - tail} chars]… {text[-tail:]}"


def _component_of_record(
    _logger: Any, _method: str, event: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """A standard-library record's logger name (redis, urllib3, ...) as its ``component``,
    so that every line says which part wrote it."""
    record = event.get("_record")
    if record is not None:
        event.setdefault("component", record.name)
    return event


def _shared_processors() -> list[Any]:
    return [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]


def configure_logging(level: str = "info", fmt: str = "auto") -> None:
    """Install the pipeline once per process; safe to call again (tests do).

    structlog's own loggers render and write directly (no stdlib hop: a canonical line per
    job must cost microseconds, not the tens a logging.Handler chain takes); stdlib loggers
    are routed through a ProcessorFormatter with the same processors and renderer.
    """
    use_json = fmt == "json" or (fmt == "auto" and not sys.stderr.isatty())
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if use_json
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    numeric = LEVELS[level]
    structlog.configure(
        processors=[
            *_shared_processors(),
            structlog.processors.StackInfoRenderer(),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.WriteLoggerFactory(file=cast(TextIO, _CurrentStderr())),
        cache_logger_on_first_use=False,
    )
    handler = logging.StreamHandler(cast(TextIO, _CurrentStderr()))
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
            foreign_pre_chain=[
                _component_of_record,
                *_shared_processors(),
                structlog.stdlib.ExtraAdder(),
            ],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(numeric)


class _CurrentStderr:
    """Writes to whatever ``sys.stderr`` is at the time (pytest and CliRunner swap it)."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


def get_logger(name: str) -> Any:
    """A lazy structlog logger (it follows later configuration); ``name`` shows as
    ``component`` in every line."""
    return structlog.get_logger(name, component=name)
