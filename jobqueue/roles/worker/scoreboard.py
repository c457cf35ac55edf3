"""The scoreboard: shared memory in which a worker process shows its supervisor every job it
holds, and the supervisor shows it the state of its lease.

The name and the idea are Apache httpd's: a parent that must act when a child is stuck or
dead reads the child's state from shared memory instead of asking the child, which may be
unable to answer (a handler holding the GIL, a SIGSTOP, a segfault). Here the supervisor uses
it to

- hand back a claimed job that has waited too long to start (``take_back``), even while the
  worker process is frozen;
- kill a job that outlived ``job_timeout``, and its exec process group;
- settle a dead worker process's lists exactly: charge an attempt to the jobs that were
  running, acknowledge the ones that had finished, release the ones that had not started.

One entry per job the worker process holds, from claim to settlement::

    FREE -> RESERVED (hub: claimed) -> RUNNING (slot: started) -> DONE_OK | DONE_FAILED
         (slot: finished) -> FREE (hub: settled in Redis)
    RESERVED -> TAKEN (hub or supervisor: handed back; the hub frees it)
    RESERVED <-> ISOLATED (hub: a suspect waits, not handed back, until it can run alone)

RESERVED -> RUNNING and RESERVED -> TAKEN happen under one cross-process lock, so a job is
either started or handed back, never both. Other fields are written by their only writer
and read without the lock (a reader tolerates a value one write old).
"""

from __future__ import annotations

import ctypes
import enum
import hashlib
import time
from collections.abc import Iterator
from dataclasses import dataclass
from multiprocessing.context import ForkServerContext
from typing import Any

ERROR_BYTES = 240
LOCK_TIMEOUT = 0.05  # the supervisor never waits long on a lock a frozen child may hold


class State(enum.IntEnum):
    FREE = 0
    RESERVED = 1
    RUNNING = 2
    DONE_OK = 3
    DONE_FAILED = 4
    TAKEN = 5
    ISOLATED = 6  # a suspect (its worker died while running it) waiting to run alone


class _Entry(ctypes.Structure):
    _fields_ = (
        ("state", ctypes.c_uint8),
        ("queue", ctypes.c_uint8),
        ("slot", ctypes.c_uint16),
        ("generation", ctypes.c_uint32),
        ("pgid", ctypes.c_int32),
        ("digest", ctypes.c_uint64),
        ("since", ctypes.c_double),
        ("error", ctypes.c_char * ERROR_BYTES),
    )


class _Header(ctypes.Structure):
    _fields_ = (
        ("generation", ctypes.c_uint32),  # lease generation: bumped on every registration
        ("confirmed_at", ctypes.c_double),  # monotonic time a renewal was sent and confirmed
        ("renewals", ctypes.c_uint32),  # confirmed renewals so far
        ("breaker", ctypes.c_uint8),  # the worker process's breaker state (0, 1, 2)
        ("ready", ctypes.c_uint8),  # the worker process is up and claiming
        # the hub saw a claim refused for want of a lease, or Redis back: renew now
        ("lost_lease", ctypes.c_uint8),
        ("token", ctypes.c_char * 32),  # the lease token it is registered under
    )


def digest(raw: bytes) -> int:
    """8 bytes of BLAKE2b of the exact payload: how the supervisor finds an entry's job in
    the worker's lists in Redis."""
    return int.from_bytes(hashlib.blake2b(raw, digest_size=8).digest(), "little")


@dataclass(frozen=True, slots=True)
class Slip:
    """A copy of one entry, as the supervisor reads it."""

    index: int
    state: State
    queue: int
    slot: int
    generation: int
    pgid: int
    digest: int
    since: float
    error: str


class Scoreboard:
    """The shared table of one worker process; picklable into the process at its start."""

    def __init__(self, context: ForkServerContext, capacity: int) -> None:
        self.capacity = capacity
        self.entries: Any = context.RawArray(_Entry, capacity)
        self.header: Any = context.RawValue(_Header)
        self.lock: Any = context.Lock()

    # -- the worker process's side ----------------------------------------------------------

    def reserve(self, index: int, queue: int, raw_digest: int, generation: int) -> None:
        """The hub claimed a job into a FREE entry (nobody else writes a FREE entry)."""
        entry = self.entries[index]
        entry.queue, entry.digest, entry.generation = queue, raw_digest, generation
        entry.slot, entry.pgid, entry.error = 0, 0, b""
        entry.since = time.monotonic()
        entry.state = State.RESERVED

    def start(self, index: int, slot: int) -> bool:
        """RESERVED -> RUNNING unless it was handed back. Call with ``lock`` held."""
        entry = self.entries[index]
        if entry.state != State.RESERVED:
            return False
        entry.slot, entry.since, entry.state = slot, time.monotonic(), State.RUNNING
        return True

    def take_back(self, index: int) -> bool:
        """RESERVED -> TAKEN unless it started. Call with ``lock`` held."""
        entry = self.entries[index]
        if entry.state != State.RESERVED:
            return False
        entry.state = State.TAKEN
        return True

    def isolate(self, index: int, waiting: bool) -> bool:
        """RESERVED -> ISOLATED (``waiting``) or back; False when the supervisor took it
        back first. Call with ``lock`` held."""
        entry = self.entries[index]
        if entry.state not in (State.RESERVED, State.ISOLATED):
            return False
        entry.state = State.ISOLATED if waiting else State.RESERVED
        return True

    def finish(self, index: int, error: str | None) -> None:
        entry = self.entries[index]
        if error is not None:
            entry.error = error.encode("utf-8", "replace")[: ERROR_BYTES - 1]
        entry.state = State.DONE_OK if error is None else State.DONE_FAILED

    def set_pgid(self, index: int, pgid: int) -> None:
        self.entries[index].pgid = pgid

    def free(self, index: int) -> None:
        self.entries[index].state = State.FREE

    def state(self, index: int) -> State:
        return State(self.entries[index].state)

    # -- the lease, written by the supervisor's keeper -------------------------------------

    @property
    def generation(self) -> int:
        return int(self.header.generation)

    @property
    def renewals(self) -> int:
        return int(self.header.renewals)

    @property
    def confirmed_at(self) -> float:
        return float(self.header.confirmed_at)

    @property
    def token(self) -> str:
        return bytes(self.header.token).decode("ascii")

    def registered(self, sent_at: float, token: str) -> None:
        """A (new) registration sent at ``sent_at`` succeeded: a new token, a new
        generation, and a lease that lives until at least ``sent_at + heartbeat_ttl``."""
        self.header.token = token.encode("ascii")
        self.header.generation += 1
        self.confirm(sent_at)

    def confirm(self, sent_at: float) -> None:
        """A renewal sent at ``sent_at`` (monotonic) succeeded; the lease lives until at
        least ``sent_at + heartbeat_ttl`` in Redis."""
        self.header.confirmed_at = sent_at
        self.header.renewals += 1

    # -- the supervisor's side --------------------------------------------------------------

    def slips(self) -> Iterator[Slip]:
        """Every entry that is not FREE (read without the lock)."""
        for index in range(self.capacity):
            entry = self.entries[index]
            if entry.state != State.FREE:
                yield Slip(
                    index,
                    State(entry.state),
                    entry.queue,
                    entry.slot,
                    entry.generation,
                    entry.pgid,
                    entry.digest,
                    entry.since,
                    entry.error.decode("utf-8", "replace"),
                )

    def take_back_stale(self, older_than: float) -> list[Slip] | None:
        """Hand back every RESERVED entry claimed before ``older_than`` (monotonic); None
        when the lock could not be had at once (the worker process holds it, frozen or
        busy: try again at the next look)."""
        if not self.lock.acquire(timeout=LOCK_TIMEOUT):
            return None
        try:
            stale = [
                slip
                for slip in self.slips()
                if slip.state is State.RESERVED and slip.since < older_than
            ]
            for slip in stale:
                self.entries[slip.index].state = State.TAKEN
            return stale
        finally:
            self.lock.release()
