"""``make chaos``: every scenario at full scale, then docs/reliability.md written from the run.

    .venv/bin/python -m tests.chaos [--scale fast|full] [--seed N] [--out docs/reliability.md]
                                    [--only SCENARIO ...]

The page holds the figures of this run only (with the commit, the date and the machine), so
it can be regenerated and diffed; a scenario that breaks its guarantee is marked FAILED in
the table and makes the command exit 1.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

from tests.chaos import scenarios
from tests.chaos.harness import CANARY, Report
from tests.helpers import REPO
from tests.redis_server import redis_server_binary

HEADING = """# Reliability: what the fault-injection suite measured

Written by `make chaos` (`.venv/bin/python -m tests.chaos`) from one run; do not edit by hand.
Every figure comes from real processes and a real redis-server: workers started and signalled
by pid, crash points in the real code (`jobqueue/faults.py`), handlers that log every run to a
file outside Redis, and a checker that compares those logs with what Redis holds after the
drain (`tests/chaos/harness.py`). The same scenarios run at a smaller scale in `make test`
(`tests/chaos/test_chaos.py`), where a broken guarantee fails the build. Every run uses the
Redis password `{canary}`; "canary leaks" counts the files and dead-letter reasons it shows
up in.

- commit `{commit}`, {date}, scale `{scale}`, seed {seed}
- {machine}; Python {python}; {redis}

"""
COLUMNS = (
    ("scenario", "-"),
    ("enqueued", "r"),
    ("completed", "r"),
    ("dead", "r"),
    ("lost", "r"),
    ("stuck", "r"),
    ("duplicated", "r"),
    ("acked twice", "r"),
    ("overlapping", "r"),
    ("kills", "r"),
    ("recovery from a kill", "-"),
    ("canary leaks", "r"),
    ("more", "-"),
    ("verdict", "-"),
)


def row(report: Report, verdict: str) -> str:
    more = ", ".join(f"{k} {v}" for k, v in report.figures.items() if k != "drained")
    cells = [
        report.scenario,
        report.enqueued,
        report.completed,
        report.dead,
        len(report.lost),
        len(report.stuck),
        report.duplicated,
        report.acked_twice,
        len(report.overlapping),
        report.kills,
        report.recovery_summary(),
        len(report.leaks),
        more or "-",
        verdict,
    ]
    return "| " + " | ".join(str(c) for c in cells) + " |\n"


def verdict(report: Report) -> str:
    return "FAILED: " + ", ".join(report.broken) if report.broken else "ok"


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.chaos", description=__doc__)
    parser.add_argument("--scale", choices=("fast", "full"), default="full")
    parser.add_argument("--seed", type=int, default=20261130)
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "reliability.md")
    parser.add_argument("--only", action="append", help="run this scenario only (repeatable)")
    args = parser.parse_args()
    scale = scenarios.FULL if args.scale == "full" else scenarios.FAST
    chosen = [*scenarios.SCENARIOS, *([scenarios.SOAK] if scale.soak_seconds else [])]
    if args.only:
        unknown = sorted(set(args.only) - {s.name for s in chosen})
        if unknown:
            parser.error(f"no scenario {', '.join(unknown)} at scale {args.scale}")
        chosen = [s for s in chosen if s.name in args.only]
    commit = source_version()  # what runs is what was checked out when the run began
    reports: list[Report] = []
    with tempfile.TemporaryDirectory(prefix="jq-chaos-") as tmp:
        folder = Path(tmp)
        for scenario in chosen:
            try:
                reports.append(scenario(folder / scenario.name, args.seed, scale))
            except Exception as exc:  # one broken scenario must not hide the others' figures
                reports.append(Report.crashed(scenario.name, f"{type(exc).__name__}: {exc}"))
            print(reports[-1].line(), f"verdict: {verdict(reports[-1])}", sep="\n", flush=True)
    verdicts = [verdict(r) for r in reports]
    args.out.write_text(page(args, commit, reports, verdicts))
    print(f"wrote {args.out}")
    return 0 if all(v == "ok" for v in verdicts) else 1


def source_version() -> str:
    """The commit checked out, with "+changes" when the work tree differs from it."""

    def git(*argv: str) -> str:
        done = subprocess.run(["git", *argv], cwd=REPO, capture_output=True, text=True, check=False)
        return done.stdout.strip()

    commit = git("rev-parse", "--short", "HEAD") or "unknown"
    return commit + ("+changes" if git("status", "--porcelain", "--untracked-files=no") else "")


def page(args: argparse.Namespace, commit: str, reports: list[Report], verdicts: list[str]) -> str:
    redis_version = subprocess.run(
        [redis_server_binary(), "--version"], capture_output=True, text=True, check=False
    ).stdout.split(" sha=")[0]
    text = HEADING.format(
        canary=CANARY,
        commit=commit,
        date=datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        scale=args.scale,
        seed=args.seed,
        machine=f"{platform.machine()}, {os.cpu_count()} CPUs, {platform.platform()}",
        python=platform.python_version(),
        redis=redis_version,
    )
    header = "| " + " | ".join(name for name, _ in COLUMNS) + " |\n"
    rule = "| " + " | ".join("---:" if a == "r" else "---" for _, a in COLUMNS) + " |\n"
    rows = "".join(row(r, v) for r, v in zip(reports, verdicts, strict=True))
    return text + header + rule + rows


if __name__ == "__main__":
    sys.exit(main())
