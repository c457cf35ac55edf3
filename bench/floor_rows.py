"""The floors: raw redis-py loops in the bench process (no worker process, so no start-up) that
show what the Redis round trips of a one-job-at-a-time worker cost on their own."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import cast

import redis
from results import Run

from jobqueue.engine.scripts import script_source
from jobqueue.job import new_job

ENQUEUE_BATCH = 1000
PRIORITY = "low"
COMPLETED_CAP = 10_000
RECORD_TTL_MS = 86_400_000  # how long ack.lua keeps a completed job's record (completed_ttl)

# Claim and ack in one script: what (b) does in two round trips, in one.
CLAIM_ACK_LUA = """
local payload = redis.call('LMOVE', KEYS[1], KEYS[2], 'RIGHT', 'LEFT')
if not payload then return false end
redis.call('LREM', KEYS[2], -1, payload)
redis.call('LPUSH', KEYS[3], payload)
redis.call('LTRIM', KEYS[3], 0, tonumber(ARGV[1]) - 1)
redis.call('HINCRBY', KEYS[4], 'completed', 1)
return payload
"""


@dataclass(frozen=True, slots=True)
class FloorKeys:
    pending: str = "floor:pending"
    processing: str = "floor:processing:w1"
    reserved: str = "floor:reserved:w1"
    completed: str = "floor:completed"
    stats: str = "floor:stats"


Loop = Callable[[redis.Redis, FloorKeys, int], None]


def _fill(client: redis.Redis, key: str, count: int) -> None:
    """LPUSH ``count`` real job payloads (as jobqueue enqueues them) in pipelined batches."""
    for start in range(0, count, ENQUEUE_BATCH):
        size = min(ENQUEUE_BATCH, count - start)
        payloads = [new_job(f"/bench/f{start + i}.dat", PRIORITY).to_json() for i in range(size)]
        client.lpush(key, *payloads)


def _blmove(client: redis.Redis, k: FloorKeys) -> bytes:
    payload = client.blmove(k.pending, k.processing, 1, "RIGHT", "LEFT")
    if payload is None:
        raise RuntimeError("floor: the queue ran dry before N jobs")
    return cast("bytes", payload)


def floor_blmove_lrem(client: redis.Redis, k: FloorKeys, count: int) -> None:
    for _ in range(count):
        payload = _blmove(client, k)
        client.lrem(k.processing, -1, payload)  # type: ignore[arg-type]  # bytes work


def floor_blmove_evalsha(client: redis.Redis, k: FloorKeys, count: int) -> None:
    ack = client.register_script(script_source("ack"))  # jobqueue's own fenced ack
    keys = [k.processing, k.reserved, k.completed, k.stats]
    for _ in range(count):
        payload = _blmove(client, k)
        ack(keys=keys, args=[COMPLETED_CAP, 0, RECORD_TTL_MS, payload, 0])


def floor_claim_ack_script(client: redis.Redis, k: FloorKeys, count: int) -> None:
    claim_ack = client.register_script(CLAIM_ACK_LUA)
    keys = [k.pending, k.processing, k.completed, k.stats]
    for _ in range(count):
        claim_ack(keys=keys, args=[COMPLETED_CAP])


FLOORS: tuple[tuple[str, str, Loop], ...] = (
    ("floor a: BLMOVE + LREM", "2 round trips/job", floor_blmove_lrem),
    (
        "floor b: BLMOVE + EVALSHA",
        "2 round trips/job (ack = jobqueue's ack.lua)",
        floor_blmove_evalsha,
    ),
    ("floor c: EVALSHA claim+ack", "1 round trip/job (one script)", floor_claim_ack_script),
)


def run_floor(url: str, count: int, name: str, config: str, loop: Loop) -> Run:
    keys = FloorKeys()
    with redis.Redis.from_url(url) as client:
        client.flushall()
        started = time.perf_counter()
        _fill(client, keys.pending, count)
        enqueue_seconds = time.perf_counter() - started
        t0 = time.perf_counter()
        loop(client, keys, count)
        seconds = time.perf_counter() - t0
        left = int(client.llen(keys.pending)) + int(client.llen(keys.processing))
    run = Run("noop", name, "floor", count, config, round(seconds, 3), round(count / seconds, 1))
    run.enqueue_seconds = round(enqueue_seconds, 3)
    if left:
        run.error = f"{left} jobs left in pending/processing"
    return run
