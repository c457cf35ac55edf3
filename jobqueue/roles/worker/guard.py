"""A worker process's guard: when the worker process goes, however it goes, nothing it started
goes on running.

A handler's children outlive a worker process killed with SIGKILL: an exec handler's command
runs in a process group of its own (so that a timeout can kill it whole), and a python
handler's subprocesses stay in the worker's group, which nothing signals once the worker is
gone. They would go on running while the reaper hands their job to another worker.

The guard is a tiny process beside each worker process, in a session of its own (a signal to
the worker's group does not reach it). The worker process tells it, one line at a time on a
pipe, which process groups to kill if it dies: ``+PGID`` to add, ``-PGID`` to forget; its own
group first. When the pipe reaches end of file, which the kernel guarantees when the worker
process exits for any reason, the guard SIGKILLs every group still on its list and exits.

This file runs as a script (``python -I -S guard.py``): standard library only, so that it
starts in milliseconds.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading


def main() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    groups: set[int] = set()
    for line in sys.stdin:
        sign, number = line[:1], line[1:].strip()
        if number.isdigit():
            (groups.add if sign == "+" else groups.discard)(int(number))
    for pgid in groups:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGKILL)


class Guard:
    """The worker process's side: start the guard, tell it what to kill.

    The pipe's write end is a bare file descriptor, never a file object: nothing closes it
    before the kernel does, when the process has finished exiting (a file object could be
    collected while the interpreter shuts down, and the guard would kill a worker process
    that was still exiting cleanly). It is not inherited by the handlers' children.
    """

    def __init__(self) -> None:
        read_end, self._fd = os.pipe()
        try:
            self._process = subprocess.Popen(
                [sys.executable, "-I", "-S", __file__],
                stdin=read_end,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
        finally:
            os.close(read_end)
        self._lock = threading.Lock()

    def watch(self, pgid: int) -> None:
        self._send(f"+{pgid}\n")

    def forget(self, pgid: int) -> None:
        self._send(f"-{pgid}\n")

    def _send(self, line: str) -> None:
        with self._lock, contextlib.suppress(OSError):  # OSError: the guard is gone
            os.write(self._fd, line.encode())


if __name__ == "__main__":
    main()
