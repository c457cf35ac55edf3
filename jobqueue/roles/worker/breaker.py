"""A circuit breaker over a sliding window of handler outcomes, shared by a process's slots.

closed: every slot claims. When at least ``min_samples`` outcomes in the last ``window``
seconds fail at a rate of ``failure_threshold`` or more, it opens.
open: nobody claims until ``cooldown_period`` has passed; then it is half-open.
half-open: exactly ONE slot gets a probe permit (the Go original let everyone through here).
The probe's success closes the breaker with a fresh window; its failure reopens it. A probe
that ends without an outcome (nothing to claim, a malformed payload) is handed back so
another slot can probe.
"""

from __future__ import annotations

import enum
import threading
import time
from collections import deque
from collections.abc import Callable

from jobqueue.config import CircuitBreakerConfig


class BreakerState(enum.IntEnum):
    """Labels are the ``jobqueue_circuit_breaker_state`` metric's ``state`` values."""

    CLOSED = 0
    HALF_OPEN = 1
    OPEN = 2

    @property
    def label(self) -> str:
        return self.name.lower().replace("_", "-")


class Permit(enum.Enum):
    RUN = "run"  # closed: claim a full batch
    PROBE = "probe"  # half-open: this caller, alone, may run one job
    WAIT = "wait"  # open, or another slot holds the probe


class CircuitBreaker:
    """Thread-safe; ``on_change(old, new)`` is called outside the lock on every transition."""

    def __init__(
        self,
        cfg: CircuitBreakerConfig,
        clock: Callable[[], float] = time.monotonic,
        on_change: Callable[[BreakerState, BreakerState], None] | None = None,
    ) -> None:
        self.cfg = cfg
        self._clock = clock
        self._on_change = on_change
        self._lock = threading.Lock()
        self._state = BreakerState.CLOSED
        self._outcomes: deque[tuple[float, bool]] = deque()
        self._failures = 0
        self._opened_at = 0.0
        self._probe_out = False

    @property
    def state(self) -> BreakerState:
        return self._state  # one read: no lock (it is asked once per job)

    def acquire(self) -> Permit:
        """Ask to claim work now."""
        with self._lock:
            transition = None
            if self._state is BreakerState.CLOSED:
                return Permit.RUN
            if self._state is BreakerState.OPEN:
                if self._clock() - self._opened_at < self.cfg.cooldown_period:
                    return Permit.WAIT
                transition = self._move(BreakerState.HALF_OPEN)
            if self._probe_out:
                permit = Permit.WAIT
            else:
                self._probe_out = True
                permit = Permit.PROBE
        self._notify(transition)
        return permit

    def wait_hint(self) -> float:
        """Seconds until acquiring could succeed (for sleeping without busy polling)."""
        with self._lock:
            if self._state is BreakerState.OPEN:
                return max(0.0, self.cfg.cooldown_period - (self._clock() - self._opened_at))
            return 0.05

    def record(self, ok: bool, probe: bool = False) -> None:
        """Report a handler outcome; ``probe`` marks the half-open probe's result."""
        with self._lock:
            if probe:
                self._probe_out = False
                target = BreakerState.CLOSED if ok else BreakerState.OPEN
                transition = self._move(target)
            elif self._state is BreakerState.CLOSED:
                transition = self._add(ok)
            else:
                transition = None  # a job started before the trip does not decide anything
        self._notify(transition)

    def cancel_probe(self) -> None:
        """The probe ended without an outcome; let another slot try."""
        with self._lock:
            self._probe_out = False

    def _add(self, ok: bool) -> tuple[BreakerState, BreakerState] | None:
        now = self._clock()
        self._outcomes.append((now, ok))
        self._failures += not ok
        horizon = now - self.cfg.window
        while self._outcomes and self._outcomes[0][0] < horizon:
            _, old_ok = self._outcomes.popleft()
            self._failures -= not old_ok
        samples = len(self._outcomes)
        if samples >= self.cfg.min_samples and self._failures / samples >= (
            self.cfg.failure_threshold
        ):
            return self._move(BreakerState.OPEN)
        return None

    def _move(self, new: BreakerState) -> tuple[BreakerState, BreakerState] | None:
        old = self._state
        if new is BreakerState.OPEN:
            self._opened_at = self._clock()
        if new is not BreakerState.CLOSED or old is not BreakerState.CLOSED:
            self._outcomes.clear()
            self._failures = 0
        self._state = new
        return (old, new) if old is not new else None

    def _notify(self, transition: tuple[BreakerState, BreakerState] | None) -> None:
        if transition and self._on_change:
            self._on_change(*transition)
