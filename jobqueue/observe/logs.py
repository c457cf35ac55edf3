"""Logging: structlog everywhere, JSON when stderr is not a terminal, console when it is.

Standard-library loggers (redis-py, urllib3, ...) are rendered through the same processors,
so an operator reads one format. Per-job context (job_id, worker, queue, trace_id) is bound
with contextvars by the worker, and every line of that job carries it.
"""

from __future__ import annotations

import logging
import sys
from typing import Any, TextIO, cast

import structlog

LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}


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
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
            foreign_pre_chain=[*_shared_processors(), structlog.stdlib.ExtraAdder()],
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
