"""The Redis key schema. Nothing else in jobqueue spells a key.

Every key starts with a Redis Cluster hash tag, so each Lua script touches one slot
(design guarantee 9). Each queue has its own tag, ``{ns:queue}``; keys about workers and
producers share ``{ns}``. On a Cluster, queues therefore spread over shards.

========================================  ======  =====================  ========================
key                                       type    written by             lifetime
========================================  ======  =====================  ========================
``{ns:q}:pending``                        list    enqueue, promote,      until claimed
                                                  release, reap,
                                                  requeue_dead (LPUSH
                                                  new, RPUSH returning;
                                                  claims take the RIGHT
                                                  end); withdraw
``{ns:q}:scheduled``                      zset    enqueue (delay), retry until promoted
                                                  (score = due ms, Redis clock); withdraw
``{ns:q}:reserved:<worker>``              list    claim; emptied by      until started or
                                                  start, release, reap   released
``{ns:q}:processing:<worker>``            list    start; emptied by ack, until settled; reaped
                                                  retry, bury, release   when the lease is gone
``{ns:q}:lease:<worker>``                 string  grant (the worker's    PX heartbeat_ttl,
                                                  supervisor)            renewed every ttl/3
``{ns:q}:completed``                      list    ack (capped at         LTRIM to completed_max
                                                  completed_max)
``{ns:q}:dead``                           list    bury, reap             until requeued/purged
``{ns:q}:stats``                          hash    every script           monotonic counters
``{ns:q}:idem:<key>``                     string  enqueue (live), ack    PX dedupe_ttl
                                                  (done)
``{ns:q}:rate``                           hash    claim (a rate-limited  PX 1h after its last
                                                  queue's token bucket)  claim
``{ns:q}:job:<id>``                       hash    every job transition   until finished, then
                                                  (its state, attempts,  PX completed_ttl
                                                  last error, times)
``{ns}:workers``                          hash    register, deregister   worker id -> info JSON
                                                                         (with its lease token)
``{ns}:hb:<worker>``                      string  register; PEXPIRE by   PX heartbeat_ttl
                                                  the lease keeper
``{ns}:ratelimit``                        hash    take_token             PX refill time + 60s
``{ns}:reaper``                           string  each reaper sweep      PX 3 reaper intervals
                                                  (SET: who swept, when)
========================================  ======  =====================  ========================

A job a worker holds is in exactly one of its two lists: ``reserved`` (claimed, not yet
started) or ``processing`` (started). The split is what lets a reaper charge an attempt only
to a job that started, and hand the others back untouched.

Liveness is the existence of ``{ns}:hb:<worker>``: renewed with PEXPIRE, which Redis accepts
even at maxmemory, and judged by Redis' own expiry, never a local clock. The per-queue
``lease`` keys fence the worker's lists: a claim needs the lease (with time left on it), and
a reaper empties the lists only once the lease has expired, so a worker resuming from a stall
can never put a job into a list that a reaper has already given up on.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

NAME_PATTERN = re.compile(r"^[A-Za-z0-9_.\-]+$")


def check_name(kind: str, name: str) -> str:
    """Namespaces and queue names become part of keys and SCAN patterns: keep them plain."""
    if not NAME_PATTERN.match(name):
        raise ValueError(f"{kind} {name!r} may use only letters, digits, '_', '.', '-'")
    return name


@dataclass(frozen=True, slots=True)
class QueueKeys:
    """The keys of one queue; all share the queue's hash tag."""

    tag: str

    @property
    def pending(self) -> str:
        return f"{self.tag}:pending"

    @property
    def scheduled(self) -> str:
        return f"{self.tag}:scheduled"

    @property
    def completed(self) -> str:
        return f"{self.tag}:completed"

    @property
    def dead(self) -> str:
        return f"{self.tag}:dead"

    @property
    def stats(self) -> str:
        return f"{self.tag}:stats"

    def reserved(self, worker_id: str) -> str:
        return f"{self.tag}:reserved:{worker_id}"

    def processing(self, worker_id: str) -> str:
        return f"{self.tag}:processing:{worker_id}"

    def lease(self, worker_id: str) -> str:
        return f"{self.tag}:lease:{worker_id}"

    def idempotency(self, key: str) -> str:
        return f"{self.tag}:idem:{key}"

    @property
    def rate(self) -> str:
        return f"{self.tag}:rate"

    def job(self, job_id: str) -> str:
        """A job's record. The scripts spell it from the stats key (lua/lib.lua: the stats
        key with ``stats`` replaced by ``job:<id>``), since they learn the id from the
        payload; this is the same name."""
        return f"{self.tag}:job:{job_id}"


class KeySchema:
    """Builds every key for one namespace."""

    def __init__(self, namespace: str) -> None:
        self.namespace = check_name("namespace", namespace)
        self._global_tag = "{" + namespace + "}"
        self._queues: dict[str, QueueKeys] = {}

    def queue(self, name: str) -> QueueKeys:
        keys = self._queues.get(name)
        if keys is None:
            keys = QueueKeys("{" + f"{self.namespace}:{check_name('queue', name)}" + "}")
            self._queues[name] = keys
        return keys

    @property
    def registry(self) -> str:
        return f"{self._global_tag}:workers"

    def heartbeat(self, worker_id: str) -> str:
        return f"{self._global_tag}:hb:{worker_id}"

    @property
    def reaper(self) -> str:
        return f"{self._global_tag}:reaper"

    @property
    def rate_limit(self) -> str:
        return f"{self._global_tag}:ratelimit"

    def scan_patterns(self) -> tuple[str, str]:
        """SCAN MATCH patterns that cover this namespace's keys and no other namespace's."""
        return (f"{self._global_tag}:*", "{" + f"{self.namespace}:*")
