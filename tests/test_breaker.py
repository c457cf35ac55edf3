"""Circuit breaker unit tests with a controllable clock."""

from __future__ import annotations

import threading

from jobqueue.config import CircuitBreakerConfig
from jobqueue.roles.worker.breaker import BreakerState, CircuitBreaker, Permit


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def breaker(clock: Clock, **cfg: float) -> CircuitBreaker:
    values = {"failure_threshold": 0.5, "window": 10, "cooldown_period": 5, "min_samples": 4}
    values.update(cfg)
    return CircuitBreaker(CircuitBreakerConfig(**values), clock=clock)  # type: ignore[arg-type]


def test_stays_closed_below_min_samples_and_threshold() -> None:
    clock = Clock()
    cb = breaker(clock)
    for _ in range(3):
        cb.record(False)
    assert cb.state is BreakerState.CLOSED  # 3 samples < min_samples
    clock.now += 11
    for ok in (True, True, True, True, True, False, False, False):
        cb.record(ok)
    assert cb.state is BreakerState.CLOSED  # 3/8 < 0.5


def test_opens_on_failure_rate_and_old_outcomes_leave_the_window() -> None:
    clock = Clock()
    cb = breaker(clock)
    for _ in range(3):
        cb.record(False)
    clock.now += 11  # those failures are now outside the 10 s window
    cb.record(False)
    assert cb.state is BreakerState.CLOSED
    for _ in range(3):
        cb.record(False)
    assert cb.state is BreakerState.OPEN
    assert cb.acquire() is Permit.WAIT
    assert 4.9 <= cb.wait_hint() <= 5


def test_half_open_admits_exactly_one_probe_across_threads() -> None:
    clock = Clock()
    cb = breaker(clock)
    for _ in range(4):
        cb.record(False)
    clock.now += 5
    permits: list[Permit] = []
    barrier = threading.Barrier(32)

    def ask() -> None:
        barrier.wait()
        permits.append(cb.acquire())

    threads = [threading.Thread(target=ask) for _ in range(32)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert permits.count(Permit.PROBE) == 1
    assert permits.count(Permit.WAIT) == 31
    assert cb.state is BreakerState.HALF_OPEN


def test_probe_success_closes_failure_reopens_cancel_hands_back() -> None:
    clock = Clock()
    changes: list[tuple[BreakerState, BreakerState]] = []
    cb = CircuitBreaker(
        CircuitBreakerConfig(min_samples=1, cooldown_period=1),
        clock=clock,
        on_change=lambda old, new: changes.append((old, new)),
    )
    cb.record(False)
    clock.now += 1
    assert cb.acquire() is Permit.PROBE
    cb.cancel_probe()
    assert cb.acquire() is Permit.PROBE  # handed back, another slot may probe
    cb.record(False, probe=True)
    assert cb.state is BreakerState.OPEN
    clock.now += 1
    assert cb.acquire() is Permit.PROBE
    cb.record(True, probe=False)  # a late non-probe result decides nothing
    assert cb.state is BreakerState.HALF_OPEN
    cb.record(True, probe=True)
    assert cb.state is BreakerState.CLOSED
    assert cb.acquire() is Permit.RUN
    assert [new for _, new in changes] == [
        BreakerState.OPEN,
        BreakerState.HALF_OPEN,
        BreakerState.OPEN,
        BreakerState.HALF_OPEN,
        BreakerState.CLOSED,
    ]
