"""How many jobs to claim from each queue: weighted, never strict, never starving.

Smooth weighted round-robin (nginx's upstream balancing): weights 8:2 give
H H H H L H H H H L ..., evenly spread, so under sustained load each queue gets its share and
none starves, however the claims are batched. A queue that came back short last time is
"dry": its share goes to the others, and it is asked for one job (a probe) so it is back in
the rotation as soon as it has work again. Idle capacity is never held for an empty queue.
A queue whose rate limit (``worker.rate_limits``) left no token is "paused" until the next
token: it is not asked at all meanwhile, and its share goes to the others.
"""

from __future__ import annotations

from collections import Counter


class ClaimPlanner:
    """Splits a number of jobs to claim over the queues by weight."""

    def __init__(self, weights: dict[str, int]) -> None:
        self.weights = dict(weights)
        self.current = dict.fromkeys(weights, 0)
        self.dry: set[str] = set()
        self.paused: dict[str, float] = {}  # queue -> monotonic time of its next token

    def open_queues(self, now: float) -> list[str]:
        """The queues that may be asked now (their rate limit has a token)."""
        for queue in [q for q, until in self.paused.items() if until <= now]:
            del self.paused[queue]
        return [q for q in self.weights if q not in self.paused]

    def pause(self, queue: str, until: float) -> None:
        """The queue's rate limit has no token before ``until`` (monotonic)."""
        self.paused[queue] = until

    def next_reopening(self) -> float | None:
        """When the first paused queue may be asked again (None: none is paused)."""
        return min(self.paused.values(), default=None)

    def _pick(self, queues: list[str]) -> str:
        total = sum(self.weights[q] for q in queues)
        for queue in queues:
            self.current[queue] += self.weights[queue]
        best = max(queues, key=self.current.__getitem__)
        self.current[best] -= total
        return best

    def plan(self, wanted: int, now: float) -> dict[str, int]:
        """Jobs to ask each open queue for: ``wanted`` split over the queues with work, plus
        one for each dry queue (so the total may exceed ``wanted`` by the number of dry
        ones). Empty when every queue is paused."""
        candidates = self.open_queues(now)
        if wanted <= 0 or not candidates:
            return {}
        live = [q for q in candidates if q not in self.dry] or candidates
        counts = Counter(self._pick(live) for _ in range(wanted))
        for queue in candidates:
            if queue not in live:
                counts[queue] = 1
        return dict(counts)

    def next_queue(self, now: float) -> str | None:
        """The one queue to ask for a single job (the breaker's probe); None when every
        queue is paused."""
        candidates = self.open_queues(now)
        live = [q for q in candidates if q not in self.dry] or candidates
        return self._pick(live) if live else None

    def observe(self, queue: str, asked: int, got: int) -> None:
        """Record a claim's outcome: short means the queue is empty for now."""
        if got < asked:
            self.dry.add(queue)
        else:
            self.dry.discard(queue)

    def wake(self, queue: str) -> None:
        """The queue has work again (a waker saw it)."""
        self.dry.discard(queue)
