"""The worker registry: who is working, whether they are alive, and their leases.

A worker is registered under a fresh random **lease token**: a heartbeat key
``{ns}:hb:<worker>`` and a registry entry (its info, including the token), then one lease key
per queue it serves, ``{ns:q}:lease:<worker>``, all with ``heartbeat_ttl`` and renewed
together every ttl/3 by the worker's supervisor (roles/worker/leases.py).

- A claim needs the queue's lease with time left (claim.lua), so a worker that stalled past
  its lease cannot take more work until it registers again.
- A reaper treats a worker as dead when its heartbeat has expired, reaps each queue only once
  the lease there is gone too (reap.lua), and removes the entry only under the token it saw
  (deregister.lua): a worker that registered again meanwhile is left alone, and so are its
  lists. Together these make an orphaned list (jobs in the list of a worker nobody looks at
  any more) impossible.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any, cast

from jobqueue.engine.batch import ms
from jobqueue.job import json_object

if TYPE_CHECKING:
    from jobqueue.engine.queue import Engine


@dataclass(frozen=True, slots=True)
class Lease:
    """A registration: the worker, its token and the queues it may claim from."""

    worker_id: str
    token: str
    queues: tuple[str, ...]


class Registry:
    """Registration, heartbeats and leases of workers, for one engine."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.keys = engine.keys

    def register(
        self, worker_id: str, info: dict[str, Any], queues: Sequence[str], ttl: float
    ) -> Lease:
        """Register (or register again) under a new token and grant the queue leases."""
        lease = Lease(worker_id, secrets.token_hex(8), tuple(queues))
        document = json.dumps({**info, "queues": list(queues), "lease": lease.token})
        hb, registry = self.keys.heartbeat(worker_id), self.keys.registry

        def run() -> None:
            self.engine.scripts["register"](
                keys=[hb, registry], args=[worker_id, document, lease.token, ms(ttl)]
            )
            self._grant(lease, queues, ttl)

        self.engine.repeat(run)
        return lease

    def _grant(self, lease: Lease, queues: Sequence[str], ttl: float) -> None:
        """One script per queue (at registration, or when a lease lapsed: rare), so that a
        lease can be granted at maxmemory too."""
        for queue in queues:
            key = self.keys.queue(queue).lease(lease.worker_id)
            self.engine.scripts["grant"](keys=[key], args=[lease.token, ms(ttl)])

    def renew(self, leases: Sequence[Lease], ttl: float) -> dict[str, bool]:
        """Extend every lease, then every heartbeat, in one round trip (PEXPIRE, accepted
        even at maxmemory). False for a worker whose heartbeat had expired: a reaper may be
        reaping it, so it must register again under a new token. A queue lease that lapsed
        while its heartbeat did not (they are renewed microseconds apart) is granted again:
        no reaper touches a worker whose heartbeat is alive."""

        def run() -> list[Any]:
            pipe = self.engine.client.pipeline(transaction=False)
            for lease in leases:
                for queue in lease.queues:
                    pipe.pexpire(self.keys.queue(queue).lease(lease.worker_id), ms(ttl))
                pipe.pexpire(self.keys.heartbeat(lease.worker_id), ms(ttl))
            return cast("list[Any]", pipe.execute())

        replies = iter(self.engine.repeat(run))
        alive: dict[str, bool] = {}
        lapsed: list[tuple[Lease, list[str]]] = []
        for lease in leases:
            gone = [q for q in lease.queues if not next(replies)]
            alive[lease.worker_id] = bool(next(replies))
            if gone and alive[lease.worker_id]:
                lapsed.append((lease, gone))
        for lease, gone in lapsed:
            self.engine.repeat(partial(self._grant, lease, gone, ttl))
        return alive

    def publish(self, lease: Lease, info: dict[str, Any]) -> bool:
        """Replace a live worker's info (breaker state, pid); False if it is not live."""
        document = json.dumps({**info, "queues": list(lease.queues), "lease": lease.token})
        keys = [self.keys.heartbeat(lease.worker_id), self.keys.registry]
        args = [lease.worker_id, document, lease.token]
        return bool(
            self.engine.repeat(lambda: self.engine.scripts["publish"](keys=keys, args=args))
        )

    def deregister(self, worker_id: str, token: str, by_owner: bool) -> bool:
        """Remove the entry if it still carries ``token`` (and, for a reaper, while the
        heartbeat is still absent). The owner calls this only with empty lists."""
        keys = [self.keys.heartbeat(worker_id), self.keys.registry]
        args = [worker_id, token, "1" if by_owner else "0"]
        return bool(
            self.engine.repeat(lambda: self.engine.scripts["deregister"](keys=keys, args=args))
        )

    def workers(self) -> dict[str, dict[str, Any]]:
        """Every registered worker's info, live or expired."""
        raw = cast(
            "dict[bytes, bytes]",
            self.engine.repeat(lambda: self.engine.client.hgetall(self.keys.registry)),
        )
        return {k.decode(): json_object(v) for k, v in raw.items()}

    def liveness(self, worker_ids: Sequence[str]) -> dict[str, int]:
        """Milliseconds left on each worker's heartbeat; -2 when it has expired."""

        def run() -> list[Any]:
            pipe = self.engine.client.pipeline(transaction=False)
            for worker_id in worker_ids:
                pipe.pttl(self.keys.heartbeat(worker_id))
            return cast("list[Any]", pipe.execute())

        return {w: int(t) for w, t in zip(worker_ids, self.engine.repeat(run), strict=True)}

    def mark_sweep(self, info: dict[str, Any], interval: float) -> None:
        """Note that a reaper swept just now; the note lasts three of its intervals, so
        ``admin workers`` can tell an expired worker awaiting the next sweep from one that
        no reaper will ever reap."""
        lifetime = max(ms(3 * interval), 1000)
        document = json.dumps({**info, "note_ms": lifetime})
        key = self.keys.reaper
        self.engine.repeat(lambda: self.engine.client.set(key, document, px=lifetime))

    def last_sweep(self) -> tuple[dict[str, Any], float] | None:
        """The note of the latest reaper sweep and its age in seconds (Redis' clock), or
        None when no reaper swept within three of its intervals."""

        def read() -> list[Any]:
            pipe = self.engine.client.pipeline(transaction=False)
            pipe.get(self.keys.reaper)
            pipe.pttl(self.keys.reaper)
            return cast("list[Any]", pipe.execute())

        raw, ttl_ms = self.engine.repeat(read)
        if raw is None:
            return None
        info = json_object(raw)
        lifetime = info.get("note_ms")
        age = (lifetime - int(ttl_ms)) / 1000 if isinstance(lifetime, int) else 0.0
        return info, max(0.0, age)

    def expired(self) -> dict[str, dict[str, Any]]:
        """Registered workers whose heartbeat has expired, with their info."""
        registered = self.workers()
        ttls = self.liveness(list(registered))
        return {w: info for w, info in registered.items() if ttls[w] == -2}


def token_of(info: Mapping[str, Any]) -> str:
    """The lease token a registry entry carries ('' for an entry without one)."""
    token = info.get("lease")
    return token if isinstance(token, str) else ""
