"""Handlers for tests/test_logs.py: they log through structlog the way a user's handler would."""

from __future__ import annotations

import logging

import structlog

from jobqueue.job import Job

LONG_TAIL = "the last line says why"


def log_and_fail(job: Job) -> None:
    """One structlog line and one standard-library line, then a failure with a long message
    whose end matters."""
    structlog.get_logger().info("handler working")
    logging.getLogger("thirdparty.client").warning("stdlib line from a library")
    raise RuntimeError("cannot convert " + "x" * 3000 + " " + LONG_TAIL)
