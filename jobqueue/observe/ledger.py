"""The event ledger: append-only NDJSON, one file per UTC day (``events-YYYY-MM-DD.ndjson``).

Each event is one ``os.write`` on a file opened with O_APPEND, so lines from many slots and
processes never interleave (POSIX appends of one write are atomic for regular files).
"""

from __future__ import annotations

import json
import os
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from jobqueue.observe.logs import get_logger

log: Any = get_logger("jobqueue.ledger")


class Ledger:
    """Writes events to ``directory``; a no-op when ``directory`` is empty."""

    def __init__(self, directory: str) -> None:
        self.directory = Path(directory) if directory else None
        self._lock = threading.Lock()
        self._day = ""
        self._fd = -1
        self._reported: set[int | None] = set()
        if self.directory:
            self.directory.mkdir(parents=True, exist_ok=True)

    @property
    def enabled(self) -> bool:
        return self.directory is not None

    def record(
        self,
        kind: str,
        worker: str,
        job_id: str,
        queue: str,
        ms: float | None = None,
        error: str | None = None,
    ) -> None:
        """Append one event: claim, done, retry, dead, reaped or requeued."""
        if self.directory is None:
            return
        now = datetime.now(UTC)
        event: dict[str, Any] = {
            "ts": now.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "type": kind,
            "worker": worker,
            "job_id": job_id,
            "queue": queue,
        }
        if ms is not None:
            event["ms"] = round(ms, 3)
        if error:
            event["error"] = error[-500:]
        line = (json.dumps(event, ensure_ascii=False) + "\n").encode()
        with self._lock:
            try:
                os.write(self._file_for(now.strftime("%Y-%m-%d")), line)
            except OSError as exc:  # the ledger is a record, never a reason to stop work
                self._report(exc)

    def _report(self, exc: OSError) -> None:
        """Say once per kind of failure that events are being lost, then keep quiet."""
        if exc.errno not in self._reported:
            self._reported.add(exc.errno)
            log.warning("ledger events are not being written", error=str(exc))

    def _file_for(self, day: str) -> int:
        if day != self._day:
            assert self.directory is not None
            if self._fd >= 0:
                os.close(self._fd)
            path = self.directory / f"events-{day}.ndjson"
            self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            self._day = day
        return self._fd

    def close(self) -> None:
        with self._lock:
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1
                self._day = ""
