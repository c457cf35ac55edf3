"""Wakers: threads that tell an idle hub the moment one of its queues has work again.

The hub claims with a fenced script, which cannot block. So when it is hungry and its queues
are empty it arms the wakers: one thread per queue, each waiting in
``Engine.wait_for_jobs`` (a blocking no-op rotation of the queue, level-triggered, so a job
that arrived before the wait began is seen at once). A waker that sees work disarms itself
and nudges the hub; the hub arms them again only after a claim came back short.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from jobqueue.engine import Reconnect, RedisError
from jobqueue.roles.worker.context import WorkerContext


class Waker(threading.Thread):
    """Waits on one queue while armed."""

    def __init__(self, ctx: WorkerContext, queue: str, nudge: Callable[[str], None]) -> None:
        super().__init__(name=f"jobqueue-waker-{queue}", daemon=True)
        self.ctx = ctx
        self.queue = queue
        self.nudge = nudge
        self.armed = threading.Event()
        self.stopped = threading.Event()
        self._reconnect = Reconnect(ctx.engine.outage, "jobqueue.waker")

    def run(self) -> None:
        timeout = self.ctx.settings.worker.claim_timeout
        while True:
            self.armed.wait()
            if self.stopped.is_set():
                return
            try:
                ready = self.ctx.engine.wait_for_jobs(self.queue, timeout)
                self._reconnect.succeeded()
            except RedisError as exc:
                self.stopped.wait(self._reconnect.failed(exc))
                continue
            if ready and not self.stopped.is_set():
                self.armed.clear()
                self.nudge(self.queue)


class Wakers:
    """One waker per queue of a worker process."""

    def __init__(self, ctx: WorkerContext, nudge: Callable[[str], None]) -> None:
        self.threads = [Waker(ctx, queue, nudge) for queue in ctx.queues]

    def start(self) -> None:
        for thread in self.threads:
            thread.start()

    def arm(self, skip: set[str] | frozenset[str] = frozenset()) -> None:
        """Wait for work on every queue but ``skip`` (rate-limited ones: they have work)."""
        for thread in self.threads:
            if thread.queue not in skip:
                thread.armed.set()

    def stop(self) -> None:
        for thread in self.threads:
            thread.stopped.set()
            thread.armed.set()
        for thread in self.threads:
            thread.join(timeout=self.threads[0].ctx.settings.worker.claim_timeout + 2)
