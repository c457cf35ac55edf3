"""Crash points: named places where the fault-injection suite makes a real process die.

``JOBQUEUE_CRASH_AT=POINT@N`` makes the process ``os._exit(CRASH_EXIT)`` the N-th time it
passes ``POINT`` (``@N`` left out: the first time). It is read once, at import; unset (as
everywhere outside ``tests/chaos``) ``crash_point`` costs one comparison. A process started
again (a worker process restarted by its supervisor) inherits the variable and counts afresh.

The points sit between the steps whose order the guarantees depend on:

============ ====================================================================
``claimed``  a claim's reply arrived: jobs are in the worker's reserved list, none started
``handled``  handlers finished: their acks and failures are about to be sent
``failed``   a failure's retry or dead-letter transition ran in Redis; its reply is unread
``reaped``   the reaper moved a dead worker's jobs; the worker is still registered
``promoted`` the promoter moved due jobs; it has not looked at the next queue
============ ====================================================================

The idea is FoundationDB's BUGGIFY and CockroachDB's testing knobs: the fault happens in the
real code path of a real process, not in a mock of it.
"""

from __future__ import annotations

import json
import os
import sys
import time

POINTS = ("claimed", "handled", "failed", "reaped", "promoted")
CRASH_EXIT = 86  # distinct from the exit codes jobqueue uses, so a test can tell it apart


def _parse(spec: str) -> tuple[str, int] | None:
    if not spec:
        return None
    point, _, nth = spec.partition("@")
    if point not in POINTS or not (nth or "1").isdigit() or int(nth or "1") < 1:
        sys.stderr.write(
            f"error: JOBQUEUE_CRASH_AT={spec!r}: expected POINT or POINT@N (N >= 1), "
            f"POINT one of {', '.join(POINTS)}\n"
        )
        raise SystemExit(2)
    return point, int(nth or "1")


_ARMED = _parse(os.environ.get("JOBQUEUE_CRASH_AT", ""))
_passes = 0


def crash_point(point: str) -> None:
    """Exit at once, without cleanup, when this is the armed point's N-th pass."""
    global _passes  # noqa: PLW0603 - one counter per process, by design
    if _ARMED is None or _ARMED[0] != point:
        return
    _passes += 1
    if _passes >= _ARMED[1]:
        line = json.dumps(
            {"event": "crash point", "point": point, "pid": os.getpid(), "t": time.time()}
        )
        os.write(2, line.encode() + b"\n")  # when it died: the suite's checker needs it
        os._exit(CRASH_EXIT)
