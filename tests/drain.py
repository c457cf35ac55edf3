"""A stand-in worker for admin tests: a thread that claims and acks through the engine.

It registers like a worker (so ``stats``/``workers``/``top`` see it) and acks every job it
claims; ``fail_paths`` containing a marker are buried instead (to make failures visible).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from jobqueue.engine import Engine

DRAIN_ID = "testhost:4242:0:drain"


class Drain(threading.Thread):
    def __init__(
        self,
        engine: Engine,
        queues: Sequence[str],
        worker_id: str = DRAIN_ID,
        batch: int = 100,
        breaker: str = "closed",
        fail_marker: str = "",
    ) -> None:
        super().__init__(name="test-drain", daemon=True)
        self.engine = engine
        self.queues = list(queues)
        self.worker_id = worker_id
        self.batch = batch
        self.breaker = breaker
        self.fail_marker = fail_marker
        self.stop = threading.Event()
        self.acked = 0

    def info(self) -> dict[str, object]:
        host, pid = self.worker_id.split(":")[:2]
        return {
            "host": host,
            "pid": int(pid),
            "started": "2024-01-01T00:00:00+00:00",
            "slots": 1,
            "breaker": self.breaker,
        }

    def run(self) -> None:
        lease = self.engine.registry.register(self.worker_id, self.info(), self.queues, ttl=30)
        while not self.stop.is_set():
            if not self._cycle():
                self.stop.wait(0.002)
        self.engine.registry.deregister(self.worker_id, lease.token, by_owner=True)

    def _cycle(self) -> bool:
        worked = False
        for queue in self.queues:
            raws = self.engine.claim(queue, self.worker_id, self.batch)
            if not raws:  # empty, or no lease (never here: it registered above)
                continue
            worked = True
            batch = [self.engine.decode(queue, raw) for raw in raws]
            good = []
            for claimed in batch:
                if self.fail_marker and self.fail_marker.encode() in claimed.raw:
                    self.engine.bury(claimed, self.worker_id, "drain: marked to fail")
                else:
                    good.append(claimed)
            self.acked += sum(self.engine.ack(queue, self.worker_id, good))
        return worked


@contextmanager
def draining(engine: Engine, queues: Sequence[str], **kwargs: object) -> Iterator[Drain]:
    drain = Drain(engine, queues, **kwargs)  # type: ignore[arg-type]
    drain.start()
    try:
        yield drain
    finally:
        drain.stop.set()
        drain.join(timeout=10)
