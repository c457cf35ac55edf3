"""Several processes serving one port (``server.processes``), each on a socket of its own.

One Python process serves one core at most (the GIL), so on 2 cores a second process nearly
doubles the enqueue requests per second (docs/api.md, "Load"). Each process binds the port
with ``SO_REUSEPORT`` and the kernel spreads new connections over the processes by a hash
of their addresses (nginx's ``listen ... reuseport``).

Why not uvicorn's own supervisor (``uvicorn.supervisors.Multiprocess``): it hands every
process the one socket the parent bound, and an event loop that wakes up accepts every
connection waiting. A burst of new keep-alive connections then goes to whichever process
woke first and stays there while the other idles: with 8 clients sending batches, 26,800
jobs/s against 54,000 when they split.

The parent only watches: it starts the processes (spawned: fresh interpreters, nothing
inherited but the settings), starts another when one dies, and on SIGINT, SIGTERM or
SIGHUP passes SIGTERM on, waits for them to finish their requests, and then ends by that
signal, as a single uvicorn process does (exit 130 for SIGINT; killed by SIGTERM). When
each of ``QUICK_DEATHS`` processes in a row dies within ``SETTLE_SECONDS`` of its own
start, the whole server stops (exit 1): it would fail the same way forever. A process
whose parent dies (even by SIGKILL) gets SIGTERM from Linux and stops too.
"""

from __future__ import annotations

import ctypes
import multiprocessing
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.process import BaseProcess
from types import FrameType
from typing import Any

from jobqueue.observe.logs import get_logger

log: Any = get_logger("jobqueue.server")

SETTLE_SECONDS = 10.0  # a process that lived this long had started well
QUICK_DEATHS = 3  # deaths in a row, each within SETTLE_SECONDS of its start: give up
POLL_SECONDS = 0.2
STARTUP_SECONDS = 30.0  # a process's first beat may take this long (imports, Redis, lifespan)
PR_SET_PDEATHSIG = 1  # linux/prctl.h
# SIGHUP too: a closed terminal, or a habit of "kill -HUP to reload", must not leave the
# processes' metric files behind.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


@dataclass
class _Slot:
    process: BaseProcess
    started: float
    beat: ctypes.c_double  # time.monotonic() of the process's last beat; 0.0 before its first
    quick_deaths: int = 0

    def silent_for(self, now: float) -> float:
        """Seconds since the last beat (before the first: past the startup allowance)."""
        return now - (self.beat.value or self.started + STARTUP_SECONDS)


def supervise(
    count: int,
    target: Callable[..., None],
    args: tuple[Any, ...],
    grace: float,
    watchdog: float = 0.0,
) -> int:
    """Run ``target(*args, beat)`` in ``count`` spawned processes until a stop signal;
    returns minus that signal's number (as ``Popen.returncode``; the caller ends by it once
    it has cleaned up), or 1 when a process kept dying at start. ``beat``: a shared
    ``ctypes.c_double`` the process sets to ``time.monotonic()`` while it is well;
    ``watchdog``: seconds of silence after which a process is killed and replaced (0:
    never). ``grace``: seconds a process has to finish after SIGTERM before it is killed."""
    context = multiprocessing.get_context("spawn")
    stopping = threading.Event()
    received: list[int] = []

    def start(quick_deaths: int = 0) -> _Slot:
        beat = context.RawValue(ctypes.c_double, 0.0)
        process = context.Process(
            target=_child,
            args=(os.getpid(), target, (*args, beat)),
            name="jobqueue-serve",
            daemon=False,
        )
        process.start()
        return _Slot(process, time.monotonic(), beat, quick_deaths)

    def on_signal(signum: int, frame: FrameType | None) -> None:
        received.append(signum)
        stopping.set()

    # A signal ignored when the server started (nohup; a background job's SIGINT) stays so.
    wanted = [sig for sig in STOP_SIGNALS if signal.getsignal(sig) is not signal.SIG_IGN]
    previous = {sig: signal.signal(sig, on_signal) for sig in wanted}
    slots = [start() for _ in range(count)]
    code = 0
    try:
        while not stopping.wait(POLL_SECONDS):
            for index, slot in enumerate(slots):
                if slot.process.is_alive():
                    silent = slot.silent_for(time.monotonic())
                    if not watchdog or silent <= watchdog:
                        continue
                    log.error(
                        f"a server process has not beaten for {silent:.1f}s (its event loop "
                        f"is stuck; server.watchdog_timeout is {watchdog:g}s); killing it",
                        pid=slot.process.pid,
                        ever_beat=bool(slot.beat.value),
                    )
                    slot.process.kill()
                    slot.process.join()
                quick = time.monotonic() - slot.started < SETTLE_SECONDS
                deaths = slot.quick_deaths + 1 if quick else 0
                if deaths >= QUICK_DEATHS:
                    log.error(
                        f"a server process exited {deaths} times within {SETTLE_SECONDS:g}s "
                        "of starting; stopping (its log lines above say why)",
                        exit_code=slot.process.exitcode,
                    )
                    code = 1
                    stopping.set()
                    break
                log.warning(
                    "a server process died; starting another",
                    pid=slot.process.pid,
                    exit_code=slot.process.exitcode,
                )
                slots[index] = start(deaths)
    finally:
        _stop([slot.process for slot in slots], grace)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return -received[0] if received else code


def _child(parent: int, target: Callable[..., None], args: tuple[Any, ...]) -> None:
    """A serving process: it asks Linux for SIGTERM when its parent dies (SIGKILL included),
    so no orphan keeps serving the port after its supervisor is gone."""
    if sys.platform == "linux":
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != parent:  # it died before the request took effect
            return
    target(*args)


def _stop(processes: list[BaseProcess], grace: float) -> None:
    """SIGTERM to each (uvicorn finishes its requests), then SIGKILL after ``grace``."""
    for process in processes:
        if process.is_alive():
            process.terminate()
    deadline = time.monotonic() + grace
    for process in processes:
        process.join(max(0.0, deadline - time.monotonic()))
        if process.is_alive():
            log.warning("a server process did not stop in time; killed", pid=process.pid)
            process.kill()
            process.join()
