"""The job: a JSON document, a superset of the Go original's payload.

A job is one value that moves whole from list to list, so the engine fences every transition
on the exact bytes it claimed (``Claimed.raw``). The Python side owns the codec: Lua scripts
only move opaque strings, which keeps number formats and unknown fields byte-stable.
Unknown fields written by other producers survive a round trip (``extra="allow"``).
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
import os
import threading
import time
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError
from pydantic_core import to_json

from jobqueue.errors import UsageError


class Job(BaseModel):
    """A unit of work. The first eight fields are the Go original's, with its JSON names
    (``id`` stays first: the engine's scripts read it from the payload's head). A job is a
    file (``filepath``, set by the producer) or any JSON ``payload`` routed by ``kind``
    (``worker.handlers``), or both."""

    model_config = ConfigDict(extra="allow", strict=True)

    id: str
    filepath: str = ""
    filesize: int = 0
    priority: str
    retries: int = 0
    creation_time: str = ""
    trace_id: str = ""
    span_id: str = ""
    idempotency_key: str = ""
    last_error: str = ""
    not_before: str = ""
    crashes: int = 0  # times its worker died while running it (a budget apart from retries)
    kind: str = ""  # which of worker.handlers runs it ('' : the default handler)
    payload: Any = None  # any JSON value, for jobs that are not files

    def to_json(self) -> bytes:
        return self.model_dump_json().encode()

    def with_failure(self, error: str) -> Job:
        """A copy that counts one more attempt and remembers why the last one failed."""
        return self.model_copy(update={"retries": self.retries + 1, "last_error": error[-2000:]})

    def with_crash(self, error: str) -> Job:
        """A copy that counts one more death of a worker while it ran. Not a retry: when a
        worker process dies, every job it ran is suspected, and the ones that did nothing
        wrong must not spend their retries on a neighbour's crash; a job that kills every
        worker it runs on (a poison pill) runs out of this budget instead."""
        return self.model_copy(update={"crashes": self.crashes + 1, "last_error": error[-2000:]})

    def reset_for_requeue(self) -> Job:
        """A copy for a dead job sent back by an operator: attempts start again."""
        return self.model_copy(update={"retries": 0, "crashes": 0, "last_error": ""})


def new_job(
    filepath: str,
    priority: str,
    filesize: int = 0,
    idempotency_key: str = "",
    job_id: str | None = None,
    **extra: Any,
) -> Job:
    """Build a fresh job with a new id (or ``job_id``), the current time and a new trace
    context."""
    return Job(**new_job_fields(filepath, priority, filesize, idempotency_key, job_id, **extra))


def new_job_fields(
    filepath: str,
    priority: str,
    filesize: int = 0,
    idempotency_key: str = "",
    job_id: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """``new_job``'s fields, in ``Job``'s order, unchecked: for a caller that serializes
    them itself (``encode_fields``) and builds the ``Job`` only if asked. The id is a random
    (version 4) UUID; it and the trace context are 40 bytes of ``_random_bytes``."""
    noise = _random_bytes(40).hex()
    return {
        **_DEFAULTS,
        "id": job_id or uuid4_from_hex(noise[:32]),
        "filepath": filepath,
        "filesize": filesize,
        "priority": priority,
        "creation_time": rfc3339_now(),
        "trace_id": noise[32:64],
        "span_id": noise[64:80],
        "idempotency_key": idempotency_key,
        **extra,
    }


_DEFAULTS = {name: field.default for name, field in Job.model_fields.items()}


class _RandomPage(threading.local):
    """This thread's page of ``os.urandom`` bytes, not yet handed out."""

    def __init__(self) -> None:
        self.page = b""
        self.at = 0


_RANDOM_PAGE_BYTES = 4096
_random = _RandomPage()


def _random_bytes(count: int) -> bytes:
    """``os.urandom(count)``, read a page at a time. Per job, ``os.urandom`` is a system
    call that lets go of the GIL, and a busy thread beside it (the HTTP server's Redis
    round trips) then kept it for up to a switch interval: a third of a batch enqueue's
    time went there. Pages are per thread, and a forked child starts afresh, so no two
    processes or threads hand out the same bytes."""
    state = _random
    if state.at + count > len(state.page):
        state.page, state.at = os.urandom(max(_RANDOM_PAGE_BYTES, count)), 0
    state.at += count
    return state.page[state.at - count : state.at]


def _forget_random_page() -> None:
    global _random  # noqa: PLW0603 - the child's fresh state, as the random module does
    _random = _RandomPage()


os.register_at_fork(after_in_child=_forget_random_page)


def encode_fields(fields: dict[str, Any]) -> bytes:
    """A job's JSON from its fields (``new_job_fields``): the bytes ``Job(**fields).to_json()``
    gives (pydantic's serializer), without building the model first, at half its cost.

    Raises PayloadError for NaN or an infinity anywhere in the job: JSON has neither
    (RFC 8259, section 6), and written as null, as pydantic does by default, a payload's
    numbers were lost without a word. PydanticSerializationError for a value JSON cannot
    hold."""
    raw = to_json(fields, inf_nan_mode="constants")
    if b"NaN" in raw or b"Infinity" in raw:  # rare: parse to tell a number from a string
        json.loads(raw, parse_constant=_refuse_constant)
    return raw


def _refuse_constant(name: str) -> None:
    raise PayloadError(f"{name} is not a JSON number: send it as a string, or null")


MAX_DELAY = 10 * 365 * 86400.0  # seconds; later due times are mistakes (1e12 s: year 33,000)


def check_delay(delay: float) -> float:
    """``delay`` as seconds, when it is a number from 0 to MAX_DELAY (ten years); raises
    UsageError naming it otherwise (NaN included). A due time past year 9999 could not
    even be shown: every read of that job and of its queue's scheduled jobs failed."""
    if isinstance(delay, bool) or not isinstance(delay, int | float) or not 0 <= delay <= MAX_DELAY:
        raise UsageError(f"delay {delay!r}: must be from 0 to {MAX_DELAY:.0f} seconds (10 years)")
    return float(delay)


def uuid4_from_hex(digits: str) -> str:
    """A version 4 UUID (RFC 9562, section 5.4) in its canonical form, made of 32 random
    hex digits: the version nibble set to 4 and the variant bits to 10, as ``uuid.uuid4``."""
    variant = "89ab"[int(digits[16], 16) & 3]
    return f"{digits[:8]}-{digits[8:12]}-4{digits[13:16]}-{variant}{digits[17:20]}-{digits[20:32]}"


def rfc3339_now() -> str:
    """UTC now to the microsecond, as ``2026-11-30T10:39:51.502043Z``."""
    seconds, micros = divmod(time.time_ns() // 1000, 1_000_000)
    return f"{_utc_second(seconds)}.{micros:06d}Z"


@functools.lru_cache(maxsize=1)
def _utc_second(seconds: int) -> str:
    """The formatted second, kept until the clock moves on (a third of ``isoformat``'s cost
    per call, for jobs stamped thousands at a time)."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))


def file_idempotency_key(abspath: str, size: int, mtime_ns: int) -> str:
    """Same file, same size, same mtime: same key, so an unchanged file is enqueued once."""
    digest = hashlib.sha256(f"{abspath}\0{size}\0{mtime_ns}".encode("utf-8", "surrogateescape"))
    return digest.hexdigest()[:32]


class PayloadError(ValueError):
    """A claimed payload that is not a job: unparsable, wrongly typed, or too large."""


def parse_job(raw: bytes, max_bytes: int) -> Job:
    """Decode a claimed payload or raise PayloadError with a reason fit for the DLQ."""
    if len(raw) > max_bytes:
        raise PayloadError(f"payload of {len(raw)} bytes exceeds max_payload_bytes={max_bytes}")
    try:
        return Job.model_validate_json(raw)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        where = ".".join(str(p) for p in first["loc"]) or "payload"
        raise PayloadError(f"malformed job: {where}: {first['msg']}") from None


@dataclass(frozen=True, slots=True)
class Claimed:
    """A job in a worker's hands: the exact bytes it claimed and, if they parsed, the job."""

    queue: str
    raw: bytes
    job: Job | None
    error: str = ""


def dead_entry_for_raw(raw: bytes, queue: str, reason: str) -> bytes:
    """Wrap a payload that is not a valid job so the DLQ keeps its bytes and the reason."""
    try:
        text, encoding = raw.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        text, encoding = base64.b64encode(raw).decode("ascii"), "base64"
    entry = {
        "id": "raw-" + hashlib.sha256(raw).hexdigest()[:24],
        "queue": queue,
        "last_error": reason,
        "dead_reason": "malformed",
        "dead_time": rfc3339_now(),
        "raw": text,
        "raw_encoding": encoding,
    }
    return json.dumps(entry, ensure_ascii=False).encode()


def dead_entry_for_job(job: Job, reason: str) -> bytes:
    """The DLQ form of a real job: the job itself, with why and when it died."""
    return job.model_copy(
        update={"last_error": reason[-2000:], "dead_time": rfc3339_now()}
    ).to_json()


def json_object(raw: bytes | str) -> dict[str, Any]:
    """A JSON object read back from Redis, or {} when the bytes are not one (nested too
    deeply for the parser included: a foreign producer may write anything)."""
    try:
        value = json.loads(raw)
    except (ValueError, RecursionError):
        return {}
    return value if isinstance(value, dict) else {}


def job_from_dead_entry(entry: bytes) -> Job | None:
    """The job a dead-letter entry holds, without its ``dead_time``; None for a wrapped raw
    payload (it was never a job) or an entry that does not parse."""
    data = json_object(entry)
    if not data or is_raw_dead_entry(data):
        return None
    data.pop("dead_time", None)
    try:
        return Job.model_validate(data)
    except ValueError:
        return None


def is_raw_dead_entry(entry: dict[str, Any]) -> bool:
    return "raw" in entry and "raw_encoding" in entry
