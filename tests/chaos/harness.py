"""The counting harness of the fault-injection suite: a world to break, and a checker.

A ``World`` owns one redis-server (its password is the secret canary, so every scenario is
also the canary scenario), the real ``jobqueue`` processes a scenario starts and signals by
pid, and two files outside Redis: the producer's outcome of each enqueue (ok / failed /
unknown) and the handlers' runs (``tests.sample_handlers.record``: id, attempt, pid, start,
end). Nothing is mocked: faults are signals to real processes, crash points in the real code
(``jobqueue.faults``), a real server restarted, a real TCP proxy.

``World.report()`` counts, from those files and from what Redis holds after the drain:

==============  =============================================================================
lost            enqueued (ok or unknown) and neither completed, dead-lettered nor still queued
stuck           still pending, scheduled, reserved or processing when the drain gave up
duplicated      runs that finished beyond each job's first (at-least-once allows some)
acked twice     jobs the completed lists hold more than once: a second ack of one job got past
                the fence (a late ack of a job already taken back; never allowed)
overlapping     jobs with two runs at the same moment (a run cut by a kill ends at the kill)
unexpected      jobs Redis or the handlers know of that no enqueue produced
recovery        seconds from a kill to the next start of each job the killed processes ran
==============  =============================================================================
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import os
import random
import signal
import subprocess
import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from redis.exceptions import ResponseError

from jobqueue.config import Settings
from jobqueue.engine import Engine, EnqueueRefused, Inspector, RedisError
from jobqueue.errors import JobQueueError
from jobqueue.job import Job, PayloadError, json_object, new_job
from tests.conftest import make_settings
from tests.helpers import descendants, group_members, kill_tree, spawn, stop_process, write_config
from tests.proxy import Proxy
from tests.redis_server import RedisServer
from tests.sample_handlers import executions

CANARY = "S3cr3t-canary"  # the Redis password of every world; it must appear nowhere

# One queue's unfinished jobs in one atomic step. SCAN from a script walks the node's keys;
# only this test harness does it, on its own throwaway servers (the engine never scans).
UNFINISHED_LUA = """
local n = redis.call('LLEN', KEYS[1]) + redis.call('ZCARD', KEYS[2])
local cursor = '0'
repeat
  local page = redis.call('SCAN', cursor, 'MATCH', ARGV[1] .. ':*', 'COUNT', 1000)
  cursor = page[1]
  for _, key in ipairs(page[2]) do
    local rest = string.sub(key, #ARGV[1] + 2)
    if string.find(rest, 'reserved:', 1, true) == 1
      or string.find(rest, 'processing:', 1, true) == 1 then
      n = n + redis.call('LLEN', key)
    end
  end
until cursor == '0'
return n
"""


@dataclass(frozen=True)
class Kill:
    at: float  # time.time()
    pids: frozenset[int]  # every process of the killed group


@dataclass
class Run:
    job: str
    pid: int
    attempt: int
    start: float
    end: float | None  # None: cut short (its process died) or still running
    failed: bool = False  # the handler raised: a retry follows, not a duplicate


@dataclass
class Report:
    scenario: str
    enqueued: int
    unknown: int
    completed: int
    dead: int
    lost: list[str]
    stuck: list[str]
    unexpected: list[str]
    duplicated: int
    overlapping: list[str]
    recovery: list[float]
    kills: int
    leaks: list[str]  # where the canary password appeared
    figures: dict[str, Any] = field(default_factory=dict)  # what the scenario adds
    broken: list[str] = field(default_factory=list)  # guarantees this run did not keep
    acked_twice: int = 0

    @classmethod
    def crashed(cls, scenario: str, error: str) -> Report:
        """The report of a scenario that raised before it could count anything."""
        empty: list[str] = []
        report = cls(scenario, 0, 0, 0, 0, empty, empty, empty, 0, empty, [], 0, empty)
        report.broken.append(f"the scenario raised {error[:200]}")
        return report

    def require(self, guarantee: str, kept: object) -> None:
        """Note ``guarantee`` as broken unless ``kept`` is truthy."""
        if not kept:
            self.broken.append(guarantee)

    def recovery_summary(self) -> str:
        if not self.recovery:
            return "-"
        values = sorted(self.recovery)
        return (
            f"p50 {percentile(values, 50):.2f} s, p99 {percentile(values, 99):.2f} s, "
            f"max {values[-1]:.2f} s"
        )

    def line(self) -> str:
        return (
            f"{self.scenario}: {self.enqueued} enqueued ({self.unknown} unknown), "
            f"{self.completed} completed, {self.dead} dead, lost {len(self.lost)}, "
            f"stuck {len(self.stuck)}, duplicated {self.duplicated}, "
            f"acked twice {self.acked_twice}, "
            f"overlapping {len(self.overlapping)}, unexpected {len(self.unexpected)}, "
            f"kills {self.kills}, recovery {self.recovery_summary()}, "
            f"canary leaks {len(self.leaks)}"
            + "".join(f", {k} {v}" for k, v in self.figures.items())
        )


def percentile(values: Sequence[float], pct: float) -> float:
    """Nearest rank of sorted ``values``."""
    rank = max(1, -(-len(values) * pct // 100))
    return values[int(rank) - 1]


class World:
    """One scenario's Redis, processes and records, stopped and removed by ``close``."""

    def __init__(
        self,
        folder: Path,
        seed: int,
        *redis_args: str,
        persistent: bool = False,
        proxied: bool = False,
        worker: dict[str, object] | None = None,
        reaper: dict[str, object] | None = None,
        sections: dict[str, dict[str, object]] | None = None,
    ) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.rng = random.Random(seed)
        self.server = RedisServer(*redis_args, persistent=persistent, password=CANARY).start()
        self.settings = world_settings(
            self.server.url, folder, worker or {}, reaper or {}, sections or {}
        )
        self.config = write_config(folder / "config.yaml", self.settings)
        self.proxy: Proxy | None = None
        self.proxied_config = self.config
        if proxied:  # workers reach Redis through the proxy; the harness and reapers do not
            self.proxy = Proxy(self.server.port).__enter__()
            through = self.settings.model_copy(deep=True)
            through.redis.url = f"redis://:{CANARY}@127.0.0.1:{self.proxy.port}/0"
            self.proxied_config = write_config(folder / "proxied.yaml", through)
        self.runs_file = folder / "runs.ndjson"
        self.outcomes_file = folder / "enqueues.ndjson"
        self.engine = Engine.from_settings(self.settings)
        self._count_unfinished = self.engine.client.register_script(UNFINISHED_LUA)
        self.kills: list[Kill] = []
        self.processes: list[subprocess.Popen[bytes]] = []

    def __enter__(self) -> World:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        for proc in self.processes:
            kill_tree(proc)
        self.engine.close()
        if self.proxy is not None:
            self.proxy.__exit__(None, None, None)
        self.server.cleanup()

    # -- processes ----------------------------------------------------------------------------

    def start(self, role: str, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        """Start ``role``; workers reach Redis through the proxy when the world has one."""
        config = self.proxied_config if role == "worker" else self.config
        proc = spawn(role, config, JQ_TEST_LOG=str(self.runs_file), **(env or {}))
        self.processes.append(proc)
        return proc

    def kill(self, proc: subprocess.Popen[bytes], sig: int = signal.SIGKILL) -> Kill:
        """Signal the process's whole group, recording which processes were below it. A stop
        or continue goes to every process below it too (worker processes and their guards
        run in groups of their own): the whole worker freezes, as in a VM pause or a
        cgroup freeze; a SIGKILL to the group leaves them to notice they are orphans."""
        below = {proc.pid, *descendants(proc.pid), *group_members(proc.pid)}
        kill = Kill(time.time(), frozenset(below))
        kill_tree(proc, sig)
        if sig in (signal.SIGSTOP, signal.SIGCONT):
            for pid in below - {proc.pid}:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, sig)
        if sig == signal.SIGKILL:
            self.kills.append(kill)
        return kill

    def stop(self, proc: subprocess.Popen[bytes]) -> int:
        return stop_process(proc, timeout=self.settings.worker.shutdown_grace + 20)

    # -- the producer side --------------------------------------------------------------------

    def jobs(self, n: int, priority: str = "high", **fields: Any) -> list[Job]:
        return [new_job(f"/data/{i}", priority, **fields) for i in range(n)]

    def enqueue(
        self, jobs: Sequence[Job], delay: float = 0.0, engine: Engine | None = None
    ) -> list[str]:
        """Enqueue in one batch, recording each outcome; returns the outcomes."""
        engine = engine or self.engine
        items = [(job, self.settings.worker.queue_of(job.priority)) for job in jobs]
        try:
            outcomes = ["ok" if ok else "failed" for ok in engine.enqueue_many(items, delay)]
        except EnqueueRefused as exc:  # Redis said which it kept
            outcomes = ["ok" if ok else "failed" for ok in exc.accepted]
        except ResponseError:
            outcomes = ["failed"] * len(jobs)  # Redis answered with an error: refused
        except RedisError:
            outcomes = ["unknown"] * len(jobs)  # the reply was lost: it may have happened
        except (JobQueueError, PayloadError):
            outcomes = ["failed"] * len(jobs)  # refused before Redis
        lines = [
            json.dumps({"id": j.id, "outcome": o}) for j, o in zip(jobs, outcomes, strict=True)
        ]
        with self.outcomes_file.open("a") as out:
            out.write("".join(f"{line}\n" for line in lines))
        return outcomes

    def push_raw(self, raws: Sequence[bytes], priority: str = "high") -> None:
        """LPUSH bytes as a foreign producer would, recording each under the id the DLQ
        gives a payload that is not a job (``raw-`` and its hash)."""
        queue = self.engine.keys.queue(self.settings.worker.queue_of(priority))
        self.engine.client.lpush(queue.pending, *raws)
        with self.outcomes_file.open("a") as out:
            for raw in raws:
                raw_id = "raw-" + hashlib.sha256(raw).hexdigest()[:24]
                out.write(json.dumps({"id": raw_id, "outcome": "ok"}) + "\n")

    def crash_redis(self, down: float) -> tuple[float, float]:
        """SIGKILL the server, keep it down ``down`` seconds, start it again on its port and
        files; returns (killed at, answering again at) as time.time()."""
        process = self.server.process
        assert process is not None
        process.kill()
        process.wait()
        killed = time.time()
        self.server.process = None
        time.sleep(down)
        self.server.start()
        return killed, time.time()

    def counter(self, name: str) -> int:
        """A field of the queues' stats hashes, summed (``reaped``, ``released``, ...)."""
        total = 0
        for queue in (self.settings.worker.queue_of(p) for p in self.settings.worker.priorities):
            total += int(self.engine.client.hget(self.engine.keys.queue(queue).stats, name) or 0)
        return total

    def outcomes(self) -> dict[str, str]:
        if not self.outcomes_file.exists():
            return {}
        lines = self.outcomes_file.read_text().splitlines()
        return {e["id"]: e["outcome"] for e in map(json.loads, lines)}

    # -- what Redis holds ---------------------------------------------------------------------

    def places(self) -> dict[str, list[str]]:
        """Job ids per kind of place: pending, scheduled, reserved, processing, completed,
        dead (the last two hold finished jobs; the others are work still to do)."""
        client: Any = self.engine.client
        found: dict[str, list[str]] = defaultdict(list)
        for queue in (self.settings.worker.queue_of(p) for p in self.settings.worker.priorities):
            q = self.engine.keys.queue(queue)
            for kind, key in (("pending", q.pending), ("completed", q.completed), ("dead", q.dead)):
                found[kind] += ids_of(client.lrange(key, 0, -1))
            found["scheduled"] += ids_of(client.zrange(q.scheduled, 0, -1))
        for raw_key in Inspector(self.engine).scan():
            name = raw_key.decode()
            for kind in ("reserved", "processing"):
                if f":{kind}:" in name:
                    found[kind] += ids_of(client.lrange(name, 0, -1))
        return found

    def stuck_in(self) -> dict[str, int]:
        """Where unfinished jobs sit, by list (a worker's lists named with its worker id and
        whether the registry still knows it): what a failed drain needs explained."""
        client: Any = self.engine.client
        registered = {k.decode() for k in client.hkeys(self.engine.keys.registry)}
        found: dict[str, int] = {}
        for raw_key in Inspector(self.engine).scan():
            name = raw_key.decode()
            kind = name.rsplit("}:", 1)[-1]
            if kind.split(":")[0] in ("pending", "scheduled", "reserved", "processing"):
                n = client.zcard(name) if kind == "scheduled" else client.llen(name)
                if n:
                    worker = kind.split(":", 1)[1] if ":" in kind else ""
                    known = (
                        ""
                        if not worker
                        else " (registered)"
                        if worker in registered
                        else " (unregistered)"
                    )
                    found[kind + known] = int(n)
        return found

    def busy(self) -> int:
        """Jobs not yet finished: pending, scheduled, reserved or processing. Each queue is
        counted by one script, so that a job moving while it is counted (a retry from
        processing back to scheduled) is seen once, never missed: counted by separate reads,
        a job that left processing after scheduled was read was in neither, and a drain
        stopped one retry short (CI, poison-pill). A queue's keys share its hash tag, so the
        script runs on the one node that holds them, Cluster included."""
        total = 0
        for queue in (self.settings.worker.queue_of(p) for p in self.settings.worker.priorities):
            q = self.engine.keys.queue(queue)
            total += int(self._count_unfinished(keys=[q.pending, q.scheduled], args=[q.tag]))
        return total

    def drain(self, timeout: float) -> bool:
        """Wait until no job is left to do; False when ``timeout`` passed first."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if not self.busy():
                    return True
            except RedisError:
                pass
            time.sleep(0.1)
        return False

    # -- the checker --------------------------------------------------------------------------

    def runs(self) -> list[Run]:
        """Each run the handlers logged, its start paired with its end (same job, process and
        attempt)."""
        runs: list[Run] = []
        open_runs: dict[tuple[str, int, int], Run] = {}
        for e in executions(self.runs_file):
            key = (e["id"], e["pid"], e["retries"] + e["crashes"])
            if e["event"] == "start":
                open_runs[key] = Run(e["id"], e["pid"], key[2], e["t"], None)
                runs.append(open_runs[key])
            elif e["event"] == "end" and key in open_runs:
                run = open_runs.pop(key)
                run.end, run.failed = e["t"], bool(e.get("failed"))
        return runs

    def report(self, scenario: str, **figures: Any) -> Report:
        outcomes = self.outcomes()
        places = self.places()
        runs = self.runs()
        enqueued = {i for i, o in outcomes.items() if o in ("ok", "unknown")}
        finished = set(places["completed"]) | set(places["dead"])
        stuck = sorted(
            set(places["pending"] + places["scheduled"] + places["reserved"] + places["processing"])
        )
        accounted = finished | set(stuck)
        known = accounted | {run.job for run in runs}
        lost = sorted(i for i, o in outcomes.items() if o == "ok" and i not in accounted)
        ends = Counter(run.job for run in runs if run.end is not None and not run.failed)
        report = Report(
            scenario=scenario,
            enqueued=len(enqueued),
            unknown=sum(1 for o in outcomes.values() if o == "unknown"),
            completed=len(set(places["completed"])),
            dead=len(set(places["dead"])),
            lost=lost,
            stuck=stuck,
            unexpected=sorted(known - enqueued),
            duplicated=sum(n - 1 for n in ends.values() if n > 1),
            overlapping=overlapping(runs, self.deaths(), last_seen(self.runs_file)),
            recovery=recovery(runs, self.kills),
            kills=len(self.kills),
            leaks=self.leaks(),
            figures=figures,
            acked_twice=len(places["completed"]) - len(set(places["completed"])),
        )
        if stuck:
            report.figures["stuck in"] = self.stuck_in()
        report.require("drained", figures.get("drained", True))
        report.require("lost = 0", not report.lost)
        report.require("stuck = 0", not report.stuck)
        report.require("unexpected = 0", not report.unexpected)
        report.require("acked twice = 0", not report.acked_twice)
        report.require("canary leaks = 0", not report.leaks)
        return report

    def leaks(self) -> list[str]:
        """Where the canary password appears: any file of the world (process logs, ledger,
        runs, config excepted: it is where the password is given) and the DLQ's reasons."""
        given = ("config.yaml", "proxied.yaml")  # where the password is given
        files = [p for p in self.folder.rglob("*") if p.is_file() and p.name not in given]
        found = [str(path) for path in files if CANARY.encode() in path.read_bytes()]
        if any(CANARY in reason for reason in self.dead_reasons()):
            found.append("dead-letter reasons")
        return found

    def deaths(self) -> dict[int, float]:
        """When each process that died under a fault died: killed by the harness, or gone at
        a crash point (its last words are in its log)."""
        died = {pid: kill.at for kill in self.kills for pid in kill.pids}
        for path in self.folder.glob("*.log"):
            for line in path.read_text().splitlines():
                if '"crash point"' in line:
                    entry = json.loads(line)
                    died[entry["pid"]] = entry["t"]
        return died

    def logged(self, text: str) -> int:
        """Lines of the processes' logs that contain ``text``."""
        return sum(
            line.count(text)
            for path in self.folder.glob("*.log")
            for line in path.read_text().splitlines()
        )

    def dead_reasons(self) -> list[str]:
        reasons = []
        for queue in (self.settings.worker.queue_of(p) for p in self.settings.worker.priorities):
            for raw in self.engine.client.lrange(self.engine.keys.queue(queue).dead, 0, -1):
                reasons.append(str(json_object(raw).get("last_error", "")))
        return reasons


def overlapping(runs: Iterable[Run], died: dict[int, float], seen: dict[int, float]) -> list[str]:
    """Jobs that ran twice at one moment. A run without an end lasted until its process
    died when that is known (a kill, a crash point), else until the last moment its process
    was seen alive (its last logged event: a process that died of its supervisor's death
    left no other trace)."""
    spans: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for run in runs:
        end = run.end if run.end is not None else died.get(run.pid, seen.get(run.pid, run.start))
        spans[run.job].append((run.start, end))
    found = []
    for job, intervals in spans.items():
        intervals.sort()
        if any(b_start < a_end for (_, a_end), (b_start, _) in itertools.pairwise(intervals)):
            found.append(job)
    return sorted(found)


def last_seen(runs_file: Path) -> dict[int, float]:
    """The time of each process's last logged event."""
    seen: dict[int, float] = {}
    for e in executions(runs_file):
        seen[e["pid"]] = max(seen.get(e["pid"], 0.0), e["t"])
    return seen


def recovery(runs: Sequence[Run], kills: Sequence[Kill]) -> list[float]:
    """For each job cut short by a kill: seconds until its next run started."""
    starts: dict[str, list[float]] = defaultdict(list)
    for run in runs:
        starts[run.job].append(run.start)
    found = []
    for kill in kills:
        for run in runs:
            if run.pid in kill.pids and run.end is None and run.start <= kill.at:
                later = [s for s in starts[run.job] if s > kill.at]
                if later:
                    found.append(min(later) - kill.at)
    return found


def ids_of(raws: Iterable[bytes | str]) -> list[str]:
    return [str(json_object(raw).get("id", "(malformed)")) for raw in raws]


def world_settings(
    url: str,
    folder: Path,
    worker: dict[str, object],
    reaper: dict[str, object],
    sections: dict[str, dict[str, object]],
) -> Settings:
    """Fast leases and sweeps, the recording handler, a ledger in the world's folder; then
    the scenario's own settings, section by section."""
    return make_settings(
        url,
        worker={
            "count": 4,
            "heartbeat_ttl": "1s",
            "claim_timeout": "200ms",
            "promote_interval": "100ms",
            "shutdown_grace": "2s",
            "max_retries": 25,
            "backoff": {"base": "10ms", "max": "100ms"},
            "completed_max": 1_000_000,
            "allowed_roots": ["/"],
            "handler": {"type": "python", "callable": "tests.sample_handlers:record"},
            **worker,
        },
        reaper={"interval": "250ms", **reaper},
        observability={"ledger": {"dir": str(folder / "ledger")}},
        **sections,
    )
