"""For the screens and the metrics that must show every state's figure whole: one queue
with jobs in every state, made through the engine as workers would make them, and the
check that a rendered screen cuts no figure."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from jobqueue.engine import Engine
from jobqueue.job import new_job

WORKER = "hosta:100:0:aab"
OLDEST_AGE = 5400.0  # the job next in line was created 1h30m ago


def fill_states(engine: Engine, queue: str = "high", dead: int = 1) -> dict[str, int]:
    """pending 3 (the next in line created OLDEST_AGE ago), scheduled 1, reserved 2,
    running 1, dead_letter ``dead``, held by WORKER (registered); returns those counts."""
    info = {"host": "hosta", "pid": 100, "started": "2024-05-01T10:00:00+00:00"}
    engine.registry.register(WORKER, info | {"slots": 4, "breaker": "closed"}, [queue], 30)
    engine.enqueue_many([(new_job(f"/dies/{i}", queue), queue) for i in range(dead)])
    for raw in engine.claim(queue, WORKER, dead) or []:
        assert engine.bury(engine.decode(queue, raw), WORKER, "malformed: no handler") == "dead"
    for name in ("/runs", "/waits", "/waits-too"):
        engine.enqueue(new_job(name, queue), queue)
    held = engine.claim(queue, WORKER, 3) or []
    assert engine.start(queue, WORKER, held[:1]) == [True]
    created = (datetime.now(UTC) - timedelta(seconds=OLDEST_AGE)).isoformat()
    engine.enqueue(new_job("/oldest", queue).model_copy(update={"creation_time": created}), queue)
    for name in ("/b", "/c"):
        engine.enqueue(new_job(name, queue), queue)
    engine.enqueue(new_job("/later", queue), queue, delay=600)
    return {"pending": 3, "scheduled": 1, "reserved": 2, "running": 1, "dead_letter": dead}


def assert_whole(out: str, figures: list[object], width: int = 80) -> None:
    """Every figure appears as a whole word, nothing is cut and every line fits ``width``."""
    assert "…" not in out, out
    assert all(len(line) <= width for line in out.splitlines()), out
    for figure in figures:
        assert re.search(rf"(?<![\w.]){re.escape(str(figure))}(?![\w.])", out), (figure, out)
