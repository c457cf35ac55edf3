"""Imported by the fork server when it starts (its preload list): the worker modules, and the
one thing that must happen in that process alone.

Importing this asks the kernel to SIGKILL the fork server when the supervisor that started
it goes (PR_SET_PDEATHSIG, Linux). The server does not exit by itself then: the worker
processes it forked hold its liveness pipe open. With it gone, each worker process dies in
turn, by the same request made in ``process.serve`` (or, started too late for it, by
seeing itself orphaned); so no worker process outlives its
supervisor, even when the supervisor is SIGKILLed, and none runs on with jobs that a reaper
is about to give to another worker.

It also ignores SIGINT here, before the fork server saves its handlers: a forked child
restores the saved ones, so a Ctrl-C at the terminal (sent to the whole process group) can
no longer raise KeyboardInterrupt in a worker process between its fork and the moment it
ignores SIGINT itself (``process.serve``). The supervisor alone decides what a Ctrl-C does.

This module is only ever imported in the fork server (``forkserver.PRELOAD``).
"""

import signal

from jobqueue.roles.worker import process  # noqa: F401 - preloaded for the worker processes
from jobqueue.roles.worker.kernel import die_with_parent

die_with_parent()
signal.signal(signal.SIGINT, signal.SIG_IGN)
