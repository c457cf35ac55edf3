"""Stop signals, handled without running Python code inside a signal handler.

A Python signal handler runs in the main thread between two bytecodes, possibly while that
thread holds a lock the handler needs (``threading.Event.set`` called from a handler that
interrupted ``Event.wait`` can deadlock; the ``signal`` module's documentation warns of
this). Here the handler does nothing: ``signal.set_wakeup_fd`` makes the interpreter write
the signal's number to a pipe, and a watcher thread reads it and calls back, outside any
handler.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable, Iterable


def _ignore(_signum: int, _frame: object) -> None:
    """Replace the default action (terminate) with nothing: the wakeup fd does the work."""


def on_signals(signals: Iterable[int], callback: Callable[[int], None]) -> bool:
    """Call ``callback(signum)`` from a daemon thread for each of ``signals`` received.

    Only the main thread may install handlers; elsewhere (a role run inside a test's thread)
    this does nothing and returns False.
    """
    if threading.current_thread() is not threading.main_thread():
        return False
    wanted = set(signals)
    read_fd, write_fd = os.pipe()
    os.set_blocking(write_fd, False)
    for signum in wanted:
        signal.signal(signum, _ignore)
    signal.set_wakeup_fd(write_fd, warn_on_full_buffer=False)

    def watch() -> None:
        while True:
            for signum in os.read(read_fd, 64):
                if signum in wanted:
                    callback(signum)

    threading.Thread(target=watch, name="jobqueue-signals", daemon=True).start()
    return True
