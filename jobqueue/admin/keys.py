"""Key presses for ``admin top``: single keys from a terminal in cbreak mode.

Kept apart from the dashboard, which only needs ``Keys``: tests drive it with scripted keys.
"""

from __future__ import annotations

import os
import select
import sys
import termios
import threading
import tty
from types import TracebackType
from typing import Any, Protocol, TextIO

QUIT_KEYS = frozenset({"q", "Q"})
ROW_KEYS = {"j": 1, "\x1b[B": 1, "k": -1, "\x1b[A": -1}  # arrows arrive as escape sequences
PAGE_KEYS = {" ": 1, "\x1b[6~": 1, "b": -1, "\x1b[5~": -1}


class KeyReader:
    """Single key presses from a terminal (cbreak mode, so Ctrl-C still interrupts).

    When the stream is not a terminal, ``wait`` only waits: Ctrl-C is the way out.
    """

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stdin
        self._saved: list[Any] | None = None
        self._idle = threading.Event()

    def _is_tty(self) -> bool:
        try:
            return self.stream.isatty()
        except ValueError:
            return False

    def __enter__(self) -> KeyReader:
        if self._is_tty():
            fd = self.stream.fileno()
            self._saved = termios.tcgetattr(fd)
            tty.setcbreak(fd)
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._saved is not None:
            termios.tcsetattr(self.stream.fileno(), termios.TCSADRAIN, self._saved)
            self._saved = None

    def wait(self, timeout: float) -> str | None:
        """The key pressed within ``timeout`` seconds (a whole escape sequence for an
        arrow), or None."""
        if self._saved is None:
            self._idle.wait(timeout)
            return None
        ready, _, _ = select.select([self.stream], [], [], timeout)
        if not ready:
            return None
        return os.read(self.stream.fileno(), 8).decode(errors="replace")


class Keys(Protocol):
    """What ``run_top`` needs from a keyboard; tests pass a scripted one."""

    def __enter__(self) -> Keys: ...

    def __exit__(self, *exc: object) -> None: ...

    def wait(self, timeout: float) -> str | None: ...
