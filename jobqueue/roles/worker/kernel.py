"""What the Linux kernel tells about, and does for, the worker's processes: /proc and prctl.

Elsewhere these calls do nothing and the answers are "cannot tell"; the supervisor's process
sentinels and the lease's TTL still hold there.
"""

from __future__ import annotations

import ctypes
import multiprocessing
import os
import signal
import sys
from pathlib import Path

PR_SET_PDEATHSIG = 1
LINUX = sys.platform.startswith("linux")


def die_with_parent() -> None:
    """Ask the kernel to SIGKILL this process when its parent goes.

    The request does not cover a parent that is already gone when it is made (a supervisor
    killed while this process was starting): ``orphaned`` tells that case.
    """
    if LINUX:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def orphaned() -> bool:
    """True when the supervisor that started this worker process is gone: the process's
    parent is no longer the fork server that the supervisor started."""
    supervisor = multiprocessing.parent_process()
    if supervisor is None or not LINUX:
        return False
    fields = _stat(os.getppid())
    return fields is None or int(fields[1]) != supervisor.pid


def is_stopped(pid: int | None) -> bool:
    """True while the process is stopped (SIGSTOP, SIGTSTP, a tracer); False when /proc
    cannot tell."""
    fields = None if pid is None else _stat(pid)
    return fields is not None and fields[0] in ("T", "t")


def _stat(pid: int) -> list[str] | None:
    """The fields of /proc/<pid>/stat after the command name (state, ppid, pgrp, ...)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rpartition(")")[2].split()
