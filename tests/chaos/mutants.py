"""``make mutants``: each fault-injection scenario fails when the fault it exists for is put in.

    .venv/bin/python -m tests.chaos.mutants [--only SCENARIO] [--seed N]

A scenario that passes on any code proves nothing. For each scenario this keeps one mutant:
a small edit of jobqueue's source that brings back a fault of the kind the scenario guards
(an unfenced transition, a reaper trusting its own clock, a lease never checked, ...). Each
mutant is applied to a copy of the checkout (``jobqueue/`` and ``tests/`` in a temporary
folder), the scenario runs there at its fast scale in its own process (the workers it spawns
import the mutated copy through ``PYTHONPATH``), and the mutant counts as caught when the
scenario reports a broken guarantee. The command prints one line per mutant with the
guarantees it broke and exits 1 when any mutant went unnoticed, or when an edit no longer
applies (the source it names has changed: the mutant must be brought up to date, not dropped).

The idea is mutation testing (PIT, mutmut), narrowed to one hand-picked fault per scenario:
whole-program runs cost seconds each, so the faults are the ones the scenarios are for.
"""

from __future__ import annotations

import argparse
import datetime
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from tests.chaos.__main__ import source_version
from tests.chaos.scenarios import SCENARIOS
from tests.helpers import REPO

ScenarioName = str


@dataclass(frozen=True)
class Edit:
    path: str  # relative to the checkout
    old: str  # must occur exactly once
    new: str


@dataclass(frozen=True)
class Mutant:
    scenario: ScenarioName
    fault: str  # the fault, in words
    edits: tuple[Edit, ...]
    # why the scenario is known not to catch it (yet): reported, not counted as a failure
    escapes: str = ""


def lua(name: str, old: str, new: str) -> Edit:
    return Edit(f"jobqueue/engine/lua/{name}.lua", old, new)


MUTANTS: tuple[Mutant, ...] = (
    Mutant(
        "sigkill-storm",
        "the reap script drops a dead worker's started jobs instead of requeueing them",
        (lua("reap", "      redis.call('RPUSH', KEYS[4], ARGV[i + 1])\n", ""),),
    ),
    Mutant(
        "crash-at-claimed",
        "neither the supervisor (settling a process that exited) nor the reaper hands back "
        "the jobs a process had claimed but not started (either one is enough)",
        (
            Edit(
                "jobqueue/roles/worker/recovery.py",
                "((held.processing, True), (held.reserved, False))",
                "((held.processing, True),)",
            ),
            lua("reap", "while released < RELEASE_PAGE and", "while false and"),
        ),
    ),
    Mutant(
        "crash-at-handled",
        "the supervisor forgets a crashed process's scoreboard: jobs it had finished but not "
        "acked are handed back and run again",
        (
            Edit(
                "jobqueue/roles/worker/supervisor.py",
                "child.slips = list(child.board.slips())",
                "child.slips = []",
            ),
        ),
    ),
    Mutant(
        "crash-at-failed",
        "the dead-letter transition copies the job to the DLQ without taking it from the "
        "worker's lists",
        (
            lua(
                "bury",
                "if redis.call('LREM', KEYS[1], -1, ARGV[1]) == 0 then\n"
                "  if redis.call('LREM', KEYS[2], -1, ARGV[1]) == 0 then return 0 end\n"
                "  started(KEYS[4], ARGV[1], KEYS[1], now)\nend\n",
                "",
            ),
        ),
    ),
    Mutant(
        "crash-at-reaped",
        "the reap script copies a dead worker's started jobs to the queue without taking them "
        "from its processing list: a sweep is not idempotent, so the sweep after the "
        "reaper's crash moves them again",
        (
            lua(
                "reap",
                "  if redis.call('LREM', KEYS[1], -1, ARGV[i]) > 0 then\n",
                "  if redis.call('LPOS', KEYS[1], ARGV[i]) then\n",
            ),
        ),
    ),
    Mutant(
        "crash-at-promoted",
        "promotion pushes due jobs without taking them from the scheduled set",
        (lua("promote", "  redis.call('ZREM', KEYS[1], due[i])\n", ""),),
    ),
    Mutant(
        "stalls",
        "the ack is not fenced: a worker back from a stall acks the jobs the reaper took from "
        "it and gave to others",
        (lua("ack", "  if owned > 0 then\n", "  if true then\n"),),
    ),
    Mutant(
        "skewed-reapers",
        "the reaper judges liveness by its own clock (a worker older than 30 minutes by the "
        "host's time is dead) and the reap script no longer checks the lease in Redis",
        (
            Edit(
                "jobqueue/engine/registry.py",
                "if ttls[w] == -2}",
                "if ttls[w] == -2 or __import__('time').time() - __import__('datetime')"
                ".datetime.fromisoformat(info['started']).timestamp() > 1800}",
            ),
            lua("reap", "if redis.call('EXISTS', KEYS[3]) == 1 then return {0, 0} end\n", ""),
        ),
    ),
    Mutant(
        "idempotency-storm",
        "enqueue ignores the idempotency key",
        (
            lua(
                "enqueue",
                "redis.call('SET', KEYS[idem], 'live', 'NX', 'PX', ttl) and true or false",
                "redis.call('SET', KEYS[idem], 'live', 'PX', ttl) and true",
            ),
        ),
    ),
    Mutant(
        "long-jobs",
        "leases are renewed every 1.5 x heartbeat_ttl instead of every ttl / 3",
        (Edit("jobqueue/roles/worker/leases.py", "wait = self.ttl / 3", "wait = self.ttl * 1.5"),),
    ),
    Mutant(
        "poison-pill",
        "a worker death while a job ran is not counted against the job",
        (
            Edit(
                "jobqueue/job.py",
                '"crashes": self.crashes + 1, ',
                '"crashes": self.crashes, ',
            ),
        ),
    ),
    Mutant(
        "bad-input",
        "a payload that is not a job raises in the worker instead of being dead-lettered",
        (
            Edit(
                "jobqueue/engine/queue.py",
                "            return Claimed(queue, raw, None, str(exc))\n",
                "            raise\n",
            ),
        ),
    ),
    Mutant(
        "redis-restart",
        "the promoter gives up at its first lost connection: jobs that fall due while Redis "
        "is down never run",
        (
            Edit(
                "jobqueue/roles/promoter.py",
                "            except RedisError as exc:\n",
                "            except ValueError as exc:\n",
            ),
        ),
    ),
    Mutant(
        "redis-restart",
        "the canary: the URL a role logs at start (and errors name) keeps its password",
        (
            Edit(
                "jobqueue/config.py",
                'return urlunsplit((parts.scheme, f"***@{host}", parts.path, parts.query, '
                "parts.fragment))",
                "return url",
            ),
        ),
    ),
    Mutant(
        "network-faults",
        "a socket timeout of ten minutes: a reply lost in a partition would block its thread "
        "until the partition ends",
        (
            Edit(
                "jobqueue/engine/connection.py",
                '"socket_timeout": read_timeout,',
                '"socket_timeout": read_timeout + 600,',
            ),
        ),
        escapes="the longest wait measured stays at the handshake's dial_timeout (5 s): the "
        "connections that were waiting at the partition's start are closed before it ends, "
        "and this scenario does not yet hold one open through it (three other single faults "
        "tried here were each stopped by another layer: reconciliation, the reaper, backoff)",
    ),
    Mutant(
        "memory-pressure",
        "the claim script's first write is one Redis refuses at maxmemory",
        (lua("claim", "runs_at_maxmemory(KEYS[1])\n", ""),),
    ),
    Mutant(
        "eviction-warning",
        "no warning when Redis may evict keys",
        (
            Edit(
                "jobqueue/roles/runner.py",
                'if policy not in (None, "noeviction"):',
                "if False:",
            ),
        ),
    ),
    Mutant(
        "dead-worker-20k-jobs",
        "one reap call moves up to 20,000 started jobs",
        (Edit("jobqueue/engine/queue.py", "REAP_PAGE = 200 ", "REAP_PAGE = 20_000 "),),
    ),
    Mutant(
        "sentinel-failover-with-wait",
        "redis.wait_replicas is read but WAIT is never sent",
        (
            Edit(
                "jobqueue/engine/batch.py",
                "waits = bool(limits.wait_replicas and (self.enqueues or self.acks))",
                "waits = False",
            ),
        ),
    ),
    Mutant(
        "cluster-failover-with-wait",
        "on a Cluster, WAIT rides redis-py's cluster pipeline, which sends it to some node on "
        "some connection, so it answers for other writes than the batch's",
        (
            Edit(
                "jobqueue/engine/batch.py",
                "if waits and isinstance(client, RedisCluster):",
                "if False:",
            ),
        ),
    ),
)
# scenarios that only measure (the failovers without WAIT) keep no guarantee to break
UNGUARDED = tuple(s.name for s in SCENARIOS if getattr(s, "measures_only", False))


def apply(mutant: Mutant, copy: Path) -> None:
    for edit in mutant.edits:
        path = copy / edit.path
        text = path.read_text()
        found = text.count(edit.old)
        if found != 1:
            raise SystemExit(
                f"mutant of {mutant.scenario}: {edit.path} holds {edit.old!r} {found} times "
                "(expected once): bring the mutant up to date with the source"
            )
        path.write_text(text.replace(edit.old, edit.new))


def run(mutant: Mutant, seed: int) -> tuple[bool, str]:
    """Run the mutant's scenario on a mutated copy; (caught, what the scenario said)."""
    with tempfile.TemporaryDirectory(prefix="jq-mutant-") as tmp:
        copy = Path(tmp)
        skip = shutil.ignore_patterns("__pycache__")
        for part in ("jobqueue", "tests"):
            shutil.copytree(REPO / part, copy / part, ignore=skip)
        apply(mutant, copy)
        command = [sys.executable, "-m", "tests.chaos", "--scale", "fast", "--seed", str(seed)]
        command += ["--only", mutant.scenario, "--out", str(copy / "reliability.md")]
        done = subprocess.run(
            command,
            cwd=copy,
            env={**os.environ, "PYTHONPATH": str(copy)},
            capture_output=True,
            text=True,
            timeout=900,
            check=False,
        )
    verdicts = re.findall(r"^verdict: (.*)$", done.stdout, re.MULTILINE)
    said = verdicts[-1] if verdicts else (done.stderr.strip().splitlines() or ["no output"])[-1]
    return done.returncode == 1 and said.startswith("FAILED"), said


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.chaos.mutants", description=__doc__)
    parser.add_argument("--only", action="append", help="a scenario's name (repeatable)")
    parser.add_argument("--seed", type=int, default=20261130)
    parser.add_argument("--doc", type=Path, help="also write the results as a Markdown page")
    args = parser.parse_args()
    known = {s.name for s in SCENARIOS}
    unknown = sorted(set(args.only or ()) - known)
    if unknown:
        parser.error(f"no scenario {', '.join(unknown)}; choose from {', '.join(sorted(known))}")
    missing = known - {m.scenario for m in MUTANTS} - set(UNGUARDED)
    if missing and not args.only:
        print(f"scenarios without a mutant: {', '.join(sorted(missing))}")
        return 1
    escaped = 0
    rows: list[str] = []
    for mutant in MUTANTS:
        if args.only and mutant.scenario not in args.only:
            continue
        caught, said = run(mutant, args.seed)
        escaped += not caught and not mutant.escapes
        verdict = "caught" if caught else "NOT CAUGHT (known)" if mutant.escapes else "NOT CAUGHT"
        print(f"{verdict}  {mutant.scenario}: {mutant.fault}")
        print(f"        {said}", flush=True)
        if not caught and mutant.escapes:
            said = f"{said}; known: {mutant.escapes}"
        cell = said.replace("|", "/")
        rows.append(f"| {mutant.scenario} | {mutant.fault} | {verdict}: {cell} |")
    if args.doc:
        args.doc.write_text(
            DOC.format(commit=source_version(), date=utc_now(), rows="\n".join(rows))
        )
        print(f"wrote {args.doc}")
    return 1 if escaped else 0


DOC = """# Mutants: the fault each scenario exists to catch

Written by `make mutants` (`.venv/bin/python -m tests.chaos.mutants --doc docs/mutants.md`);
do not edit by hand. Each row puts one fault back into a copy of the code (the edits are in
`tests/chaos/mutants.py`) and runs the scenario at its fast scale against it: the scenario
must report a broken guarantee. Commit `{commit}`, {date}.

| scenario | the fault put back | what the scenario said |
| --- | --- | --- |
{rows}
"""


def utc_now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")


if __name__ == "__main__":
    sys.exit(main())
