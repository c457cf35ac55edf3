"""Measuring helpers shared by the bench process, the handlers of jobqueue's worker
(workloads.py) and the peer scripts (peers/_common.py, run by the peers' own venvs): standard
library only, nothing done at import.

* Memory: ``memory(*pids)`` reads ``VmRSS`` from ``/proc/<pid>/status`` for the process and
  every descendant (a supervisor's worker processes, a fork server, a guard), and the tree's
  proportional set size (``Pss`` in ``/proc/<pid>/smaps_rollup``: pages shared between forked
  processes counted once, split between them).
* CPU: ``cpu_seconds(*pids)`` sums user and system time from ``/proc/<pid>/stat`` over the
  processes and their descendants: on a shared 2-core machine, what a server spends per
  request moves far less from run to run than how many requests it answers.
* Latency: a handler calls ``record_latency(sent, started)``; the line ``"<sent> <started>"``
  (both ``time.time()``) goes to the file named by ``LATENCY_ENV`` with one ``os.write`` on an
  ``O_APPEND`` descriptor, so lines of concurrent slots never interleave. ``paced`` is the
  sender's loop (an absolute schedule on ``perf_counter``, so a late send does not shift the
  ones after it) and ``latency_stats`` the percentiles the bench reads from the file.
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

LATENCY_ENV = "BENCH_LATENCY_FILE"
PROC = Path("/proc")


# -- cpu -------------------------------------------------------------------------------------


def cpu_seconds(*pids: int) -> float:
    """User + system CPU seconds so far of ``pids`` and their descendants (a process that
    ended meanwhile counts nothing)."""
    total = 0
    for member in dict.fromkeys(m for pid in pids for m in descendants(pid)):
        try:
            fields = (PROC / str(member) / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


# -- memory ----------------------------------------------------------------------------------


def _status(pid: int) -> dict[str, str]:
    try:
        text = (PROC / str(pid) / "status").read_text()
    except OSError:
        return {}
    return dict(line.split(":\t", 1) for line in text.splitlines() if ":\t" in line)


def _kb(field: str) -> int:
    return int(field.split(maxsplit=1)[0]) if field.strip() else 0


def descendants(pid: int) -> list[int]:
    """``pid`` and every live process below it (by parent pid), parents first."""
    children: dict[int, list[int]] = {}
    for entry in PROC.iterdir():
        if entry.name.isdigit():
            ppid = _status(int(entry.name)).get("PPid", "0").strip()
            children.setdefault(int(ppid or 0), []).append(int(entry.name))
    tree, todo = [], [pid]
    while todo:
        current = todo.pop(0)
        tree.append(current)
        todo.extend(sorted(children.get(current, [])))
    return tree


def _pss_kb(pid: int) -> int:
    try:
        text = (PROC / str(pid) / "smaps_rollup").read_text()
    except OSError:
        return 0
    return sum(_kb(line.split(":", 1)[1]) for line in text.splitlines() if line.startswith("Pss:"))


def _cmdline(pid: int | str) -> str:
    try:
        return (PROC / str(pid) / "cmdline").read_bytes().decode(errors="replace")
    except OSError:
        return ""


def _role(pid: int, status: dict[str, str]) -> str:
    """What a process of a worker tree is, from its command line (multiprocessing's helpers,
    jobqueue's guard), else its name."""
    command = _cmdline(pid)
    if "multiprocessing.forkserver" in command:
        parent = _cmdline(status.get("PPid", "0").strip())
        return "worker process" if "multiprocessing.forkserver" in parent else "fork server"
    if "multiprocessing.resource_tracker" in command:
        return "resource tracker"
    if "guard.py" in command:
        return "guard"
    return status["Name"].strip()


def memory(*pids: int) -> dict[str, Any]:
    """RSS of the processes ``pids`` and their descendants: each process (pid, role, MB), the
    largest, the sum, and the PSS of them all in MB."""
    processes = []
    pss = 0
    for member in dict.fromkeys(m for pid in pids for m in descendants(pid)):
        status = _status(member)
        if "VmRSS" not in status:  # gone, or a zombie
            continue
        rss_mb = round(_kb(status["VmRSS"]) / 1024, 1)
        processes.append({"pid": member, "name": _role(member, status), "rss_mb": rss_mb})
        pss += _pss_kb(member)
    rss = [p["rss_mb"] for p in processes]
    return {
        "processes": processes,
        "rss_mb_max": round(max(rss, default=0.0), 1),
        "rss_mb_total": round(sum(rss), 1),
        "pss_mb_total": round(pss / 1024, 1),
    }


# -- latency ---------------------------------------------------------------------------------


def record_latency(sent: float, started: float) -> None:
    """Append ``"<sent> <started>"`` to the file named by ``LATENCY_ENV`` (if set)."""
    path = os.environ.get(LATENCY_ENV)
    if path:
        append_line(path, f"{sent:.6f} {started:.6f}\n")


def append_line(path: str, line: str) -> None:
    """One ``os.write`` on an ``O_APPEND`` descriptor: concurrent writers never interleave."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)


def paced(send: Callable[[float], None], rate: float, count: int) -> dict[str, float]:
    """Call ``send(time.time())`` ``count`` times at ``rate`` per second on an absolute
    schedule (the i-th call is due at start + i / rate, whatever the earlier ones cost);
    the wall-clock time is read just before each call. Returns the achieved rate and how
    late the latest call started."""
    start = time.perf_counter()
    first_sent, late = time.time(), 0.0
    for i in range(count):
        due = start + i / rate
        now = time.perf_counter()
        if due > now:
            time.sleep(due - now)
        else:
            late = max(late, now - due)
        send(time.time())
    seconds = time.perf_counter() - start
    return {
        "first_sent": first_sent,
        "sent": count,
        "send_seconds": round(seconds, 3),
        "send_rate": round(count / seconds, 1),
        "latest_send_ms": round(late * 1000, 2),
    }


def _percentile(ordered: list[float], share: float) -> float:
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def latency_stats(path: Path, since: float) -> dict[str, Any]:
    """Percentiles (ms) of started - sent over the lines of jobs sent at or after ``since``
    (``time.time()``), and how many lines there were in all."""
    lines = [line.split() for line in path.read_text().splitlines()]
    pairs = [(float(sent), float(started)) for sent, started in (p for p in lines if len(p) == 2)]
    kept = sorted((started - sent) * 1000 for sent, started in pairs if sent >= since)
    out: dict[str, Any] = {"recorded": len(pairs), "measured": len(kept)}
    if kept:
        out |= {
            f"p{int(share * 100)}_ms": round(_percentile(kept, share), 3)
            for share in (0.5, 0.95, 0.99)
        }
        out |= {"max_ms": round(kept[-1], 3), "mean_ms": round(statistics.fmean(kept), 3)}
    return out
