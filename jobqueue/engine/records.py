"""Job records: what happened to job X, as the transitions wrote it.

Every script that moves a job also writes its record, ``{ns:q}:job:<id>`` (lua/lib.lua),
in the same atomic call: no extra round trip on the hot path, and a record never disagrees
with the lists. A finished job's record expires ``worker.completed_ttl`` after it finished.
Times are Redis' clock (milliseconds since the epoch), like every due time.

The idea is Sidekiq's and BullMQ's job hashes; unlike BullMQ the payload is not copied into
the record (it stays in the list that holds the job), so a record is a few small fields.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any, Literal

State = Literal["pending", "scheduled", "processing", "completed", "dead"]
STATES: tuple[State, ...] = ("pending", "scheduled", "processing", "completed", "dead")
FINISHED: tuple[State, ...] = ("completed", "dead")


def from_epoch_ms(value: float | bytes | str) -> datetime | None:
    """A time from Redis (epoch milliseconds, as an integer or as Lua wrote a large number:
    ``8.64e+18``); None when it is no time a datetime can hold. A record or a due time
    written before delays were bounded (or by another producer) must not fail every read
    of its job and of its queue."""
    try:
        return datetime.fromtimestamp(float(value) / 1000, UTC)
    except (ValueError, OverflowError, OSError):
        return None


def _time(fields: Mapping[bytes, bytes], name: str) -> datetime | None:
    raw = fields.get(name.encode())
    return from_epoch_ms(raw) if raw else None


@dataclass(frozen=True, slots=True)
class JobRecord:
    """One job's state. ``pending`` covers a job claimed by a worker but not yet started;
    ``worker`` and ``started_at`` are those of its last run; ``attempts`` counts runs
    started; ``last_error`` is the error of its last failed run ('' when none)."""

    id: str
    queue: str
    state: State
    attempts: int
    last_error: str
    enqueued_at: datetime | None
    due_at: datetime | None  # when a scheduled job runs (or last ran, once promoted)
    started_at: datetime | None
    finished_at: datetime | None
    worker: str

    @property
    def finished(self) -> bool:
        return self.state in FINISHED

    @classmethod
    def from_hash(cls, job_id: str, queue: str, fields: Mapping[bytes, bytes]) -> JobRecord:
        state = fields.get(b"state", b"").decode()
        return cls(
            id=job_id,
            queue=queue,
            state=state if state in STATES else "pending",
            attempts=int(fields.get(b"attempts", b"0") or 0),
            last_error=fields.get(b"last_error", b"").decode(errors="replace"),
            enqueued_at=_time(fields, "enqueued_ms"),
            due_at=_time(fields, "due_ms"),
            started_at=_time(fields, "started_ms"),
            finished_at=_time(fields, "finished_ms"),
            worker=fields.get(b"worker", b"").decode(errors="replace"),
        )

    def as_json(self) -> dict[str, Any]:
        """JSON-ready: times as RFC 3339 strings (UTC) or null."""
        return {
            k: v.isoformat().replace("+00:00", "Z") if isinstance(v, datetime) else v
            for k, v in asdict(self).items()
        }
