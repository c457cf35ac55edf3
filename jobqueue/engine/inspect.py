"""Read-mostly operator views of the queues: counts, peeks, purges and the key census.

Counts come from the worker registry and per-queue keys, never from scanning; only
``census`` and ``purge_all`` walk the keyspace, with SCAN (never KEYS) over this namespace.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast

from jobqueue.engine.queue import Engine

MEMORY_SAMPLES = 200
SCAN_BATCH = 500


@dataclass(slots=True)
class QueueCounts:
    """One queue's jobs by state (docs/admin.md, "Vocabulary"). A job a worker holds is
    ``reserved`` (claimed, not started: prefetched) or ``running`` (started); the design's
    ``processing`` is both, so that pending + scheduled + processing + completed +
    dead_letter accounts for every job."""

    pending: int = 0
    scheduled: int = 0
    reserved: int = 0
    running: int = 0
    completed: int = 0
    dead_letter: int = 0
    counters: dict[str, int] = field(default_factory=dict)

    @property
    def processing(self) -> int:
        return self.reserved + self.running


@dataclass(slots=True)
class Stats:
    queues: dict[str, QueueCounts]
    workers: int
    registered: int

    @property
    def completed(self) -> int:
        return sum(q.completed for q in self.queues.values())

    @property
    def dead_letter(self) -> int:
        return sum(q.dead_letter for q in self.queues.values())

    def as_json(self) -> dict[str, Any]:
        return {
            "queues": {
                name: {
                    "pending": q.pending,
                    "scheduled": q.scheduled,
                    "reserved": q.reserved,
                    "running": q.running,
                    "processing": q.processing,
                    "completed": q.completed,
                    "dead_letter": q.dead_letter,
                    "counters": q.counters,
                }
                for name, q in self.queues.items()
            },
            "completed": self.completed,
            "dead_letter": self.dead_letter,
            "workers": self.workers,
            "registered_workers": self.registered,
        }


@dataclass(frozen=True, slots=True)
class Entry:
    """One peeked payload; ``due_ms`` is set for scheduled jobs (Redis clock, epoch ms)."""

    queue: str
    raw: bytes
    due_ms: int | None = None


class Inspector:
    """Operator queries over an Engine's keys."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.client = engine.client
        self.keys = engine.keys

    def stats(self, queues: Mapping[str, str]) -> Stats:
        """Counts per label (priority) -> queue name. Jobs registered workers hold are
        counted apart: ``running`` (their processing lists) and ``reserved`` (claimed, not
        started)."""
        registered = self.engine.registry.workers()
        ttls = self.engine.registry.liveness(list(registered))
        pipe = self.client.pipeline(transaction=False)
        for queue in queues.values():
            q = self.keys.queue(queue)
            pipe.llen(q.pending)
            pipe.zcard(q.scheduled)
            pipe.llen(q.dead)
            pipe.hgetall(q.stats)
            for worker_id in registered:
                pipe.llen(q.processing(worker_id))
                pipe.llen(q.reserved(worker_id))
        replies = iter(pipe.execute())
        counts = {}
        for label in queues:
            pending, scheduled, dead, raw_counters = (next(replies) for _ in range(4))
            counters = {k.decode(): int(v) for k, v in raw_counters.items()}
            held = [int(next(replies)) for _ in range(2 * len(registered))]
            counts[label] = QueueCounts(
                pending=int(pending),
                scheduled=int(scheduled),
                reserved=sum(held[1::2]),
                running=sum(held[0::2]),
                completed=counters.get("completed", 0),
                dead_letter=int(dead),
                counters=counters,
            )
        live = sum(1 for ttl in ttls.values() if ttl != -2)
        return Stats(counts, workers=live, registered=len(registered))

    def peek_pending(self, queue: str, n: int) -> list[Entry]:
        """The next ``n`` jobs a worker would claim, in claim order."""
        raw = cast("list[bytes]", self.client.lrange(self.keys.queue(queue).pending, -n, -1))
        return [Entry(queue, r) for r in reversed(raw)]

    def oldest_pending(self, queues: list[str]) -> dict[str, float | None]:
        """Per queue, when the job next in line (the claim end of its pending list, so the
        one that has waited longest) was created, in epoch seconds; None when the queue is
        empty or that entry carries no readable ``creation_time``. One round trip."""
        pipe = self.client.pipeline(transaction=False)
        for queue in queues:
            pipe.lindex(self.keys.queue(queue).pending, -1)
        return {q: _created(raw) for q, raw in zip(queues, pipe.execute(), strict=True)}

    def peek_scheduled(self, queue: str, n: int) -> list[Entry]:
        rows = cast(
            "list[tuple[bytes, float]]",
            self.client.zrange(self.keys.queue(queue).scheduled, 0, n - 1, withscores=True),
        )
        # A score Redis holds as inf (written by hand, or by another producer) has no due time.
        return [
            Entry(queue, raw, int(score) if math.isfinite(score) else None) for raw, score in rows
        ]

    def peek_completed(self, queue: str, n: int) -> list[Entry]:
        """Most recent first."""
        raw = cast("list[bytes]", self.client.lrange(self.keys.queue(queue).completed, 0, n - 1))
        return [Entry(queue, r) for r in raw]

    def peek_dead(self, queue: str, n: int) -> list[Entry]:
        """Oldest first: the order ``requeue_dead`` takes them in."""
        raw = cast("list[bytes]", self.client.lrange(self.keys.queue(queue).dead, -n, -1))
        return [Entry(queue, r) for r in reversed(raw)]

    def server_info(self) -> dict[str, Any]:
        """Redis' INFO (on a Cluster, the first node's): for status lines. Safe to repeat."""
        info: dict[str, Any] = self.engine.repeat(self.client.info)
        if "redis_version" not in info:  # a Cluster: one dict per node
            info = next((v for v in info.values() if isinstance(v, dict)), info)
        return info

    def purge_dead(self, queues: list[str]) -> int:
        """Delete every dead-letter list; returns how many entries went."""
        purged = 0
        for queue in queues:
            pipe = self.client.pipeline(transaction=True)
            pipe.llen(self.keys.queue(queue).dead)
            pipe.delete(self.keys.queue(queue).dead)
            purged += int(pipe.execute()[0])
        return purged

    def scan(self) -> Iterator[bytes]:
        """Every key of this namespace, by SCAN (never KEYS)."""
        for pattern in self.keys.scan_patterns():
            yield from self.client.scan_iter(match=pattern, count=1000)

    def scan_batches(self) -> Iterator[list[bytes]]:
        """This namespace's keys in batches, each sized for one pipelined round trip."""
        batch: list[bytes] = []
        for key in self.scan():
            batch.append(key)
            if len(batch) >= SCAN_BATCH:
                yield batch
                batch = []
        if batch:
            yield batch

    def purge_all(self) -> int:
        """Delete every key of this namespace (development only; the CLI guards it)."""
        deleted = 0
        for batch in self.scan_batches():
            pipe = self.client.pipeline(transaction=False)
            for key in batch:
                pipe.unlink(key)
            deleted += sum(int(n) for n in pipe.execute())
        return deleted

    def census(self) -> dict[str, Any]:
        """Key count by type and kind, plus memory sampled from up to MEMORY_SAMPLES keys;
        one round trip per batch of keys."""
        by_type: Counter[str] = Counter()
        by_kind: Counter[str] = Counter()
        sampled_bytes = sampled = total = 0
        for batch in self.scan_batches():
            total += len(batch)
            by_kind.update(_kind_of(key.decode(errors="replace")) for key in batch)
            pipe = self.client.pipeline(transaction=False)
            for key in batch:
                pipe.type(key)
            measured = batch[: max(0, MEMORY_SAMPLES - sampled)]
            for key in measured:
                pipe.memory_usage(key)
            replies = pipe.execute()
            by_type.update(_text(kind) for kind in replies[: len(batch)])
            sizes = [int(size) for size in replies[len(batch) :] if size is not None]
            sampled += len(sizes)
            sampled_bytes += sum(sizes)
        estimate = round(sampled_bytes / sampled * total) if sampled else 0
        return {
            "keys": total,
            "by_type": dict(by_type),
            "by_kind": dict(by_kind),
            "memory_sampled_keys": sampled,
            "memory_estimated_bytes": estimate,
        }


def _created(raw: bytes | None) -> float | None:
    """A payload's ``creation_time`` (RFC 3339) in epoch seconds, if it has a readable one."""
    try:
        stamp = json.loads(raw)["creation_time"] if raw is not None else None
        return datetime.fromisoformat(stamp).timestamp() if isinstance(stamp, str) else None
    except (ValueError, TypeError, KeyError, RecursionError):
        return None


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _kind_of(key: str) -> str:
    """``{ns:q}:processing:w1`` -> ``processing``; ``{ns}:hb:w1`` -> ``hb``."""
    rest = key.split("}:", 1)[-1]
    return rest.split(":", 1)[0]
