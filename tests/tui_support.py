"""Driving the TUI in tests: run an App under Textual's Pilot from a plain (sync) test, wait
for conditions (never for a fixed time), and make real jobs in each state."""

from __future__ import annotations

import asyncio
import html
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any

from textual.pilot import Pilot

from jobqueue.engine import Engine, RetryPolicy
from jobqueue.job import new_job
from jobqueue.tui.app import JobqueueApp

WORKER = "hosta:100:0:aaa"
DEAD_NOW = RetryPolicy(max_retries=0, base=0.0, cap=0.0)


async def until(pilot: Pilot[Any], condition: Callable[[], Any], timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s: {condition}")
        await pilot.pause(0.02)


def drive(
    app: JobqueueApp,
    script: Callable[[Pilot[Any]], Awaitable[None]],
    size: tuple[int, int] = (80, 24),
) -> None:
    """Run ``app`` headless at ``size``, wait for its first sample, then ``script``."""

    async def main() -> None:
        async with app.run_test(size=size) as pilot:
            await until(pilot, lambda: app.sample is not None or app.error)
            await script(pilot)

    asyncio.run(main())


def screen_text(app: JobqueueApp) -> str:
    """What the terminal shows now, as text (from Textual's own SVG screenshot)."""
    svg = app.export_screenshot()
    return html.unescape(re.sub(r"<[^>]+>", "", svg.split("</style>")[-1])).replace("\xa0", " ")


def register(engine: Engine, worker_id: str = WORKER) -> None:
    host, pid = worker_id.split(":")[:2]
    info = {"host": host, "pid": int(pid), "started": "2024-05-01T10:00:00+00:00"}
    engine.registry.register(
        worker_id, info | {"slots": 4, "breaker": "closed"}, ["high", "low"], 30
    )


def bury(engine: Engine, queue: str, job_id: str, error: str) -> None:
    """A real dead job: enqueued, claimed by a registered worker, failed out of retries."""
    register(engine)
    engine.enqueue(new_job(f"/data/{job_id}", queue).model_copy(update={"id": job_id}), queue)
    claimed = engine.decode(queue, engine.claim(queue, WORKER, 1)[0])  # type: ignore[index]
    assert engine.fail(claimed, WORKER, error, DEAD_NOW) == "dead"
