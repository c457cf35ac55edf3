"""Job handlers: what a worker slot runs for each job.

A handler is a callable taking the Job; returning means success, raising means failure (the
exception's message becomes ``last_error``). ``worker.job_timeout`` is enforced by each
kind in the way that kind allows: exec kills the process, async callables are cancelled, and
sync callables run on a helper thread whose late result is discarded (Python cannot kill a
thread; the job is failed and its slot moves on).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import importlib
import inspect
import os
import queue
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from jobqueue.config import Settings
from jobqueue.errors import ConfigError
from jobqueue.job import Job

Handler = Callable[[Job], None]
STDERR_TAIL = 2000


class HandlerError(Exception):
    """A handler failure with an operator-readable message."""


class ForbiddenPath(HandlerError):
    """The job's file is outside ``worker.allowed_roots``: dead-letter it, never retry."""


def noop_handler(job: Job) -> None:
    """Does nothing: for benchmarks of the queue itself."""


def demo_handler(job: Job) -> None:
    """The Go original's simulation: ~1 ms per KiB (capped at 1 s); paths with 'fail' fail."""
    time.sleep(min(job.filesize / 1024 / 1000, 1.0))
    if "fail" in job.filepath.lower():
        raise HandlerError(f"simulated failure for {job.filepath}")


class ExecHandler:
    """Runs ``command`` without a shell; exit 0 is success; stderr's tail is the error."""

    def __init__(self, command: list[str], timeout: float) -> None:
        self.command = command
        self.timeout = timeout or None

    def argv(self, job: Job) -> list[str]:
        values = {"{filepath}": job.filepath, "{id}": job.id, "{priority}": job.priority}
        argv = []
        for template in self.command:
            arg = template
            for placeholder, value in values.items():
                arg = arg.replace(placeholder, value)
            argv.append(arg)
        return argv

    def __call__(self, job: Job) -> None:
        env = {
            **os.environ,
            "JOBQUEUE_JOB_ID": job.id,
            "JOBQUEUE_JOB_FILEPATH": job.filepath,
            "JOBQUEUE_JOB_PRIORITY": job.priority,
            "JOBQUEUE_JOB_JSON": job.to_json().decode(),
        }
        try:
            done = subprocess.run(
                self.argv(job),
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                timeout=self.timeout,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise HandlerError(f"killed after job_timeout={self.timeout}s") from exc
        except OSError as exc:
            raise HandlerError(f"cannot run {self.command[0]!r}: {exc.strerror}") from exc
        if done.returncode != 0:
            tail = done.stderr[-STDERR_TAIL:].decode(errors="replace").strip()
            raise HandlerError(
                f"exit {done.returncode}: {tail}" if tail else f"exit {done.returncode}"
            )


class PythonHandler:
    """Calls ``package.module:function`` with the job; sync or async; one per slot."""

    def __init__(self, target: Callable[[Job], Any], timeout: float) -> None:
        self.target = target
        self.timeout = timeout or None
        self.is_async = inspect.iscoroutinefunction(target)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._helper: HelperThread | None = None

    def __call__(self, job: Job) -> None:
        if self.is_async:
            self._run_async(job)
        elif self.timeout is None:
            self.target(job)
        else:
            self._run_sync_with_timeout(job)

    def _run_async(self, job: Job) -> None:
        if self._loop is None:
            self._loop = asyncio.new_event_loop()
        try:
            self._loop.run_until_complete(asyncio.wait_for(self.target(job), self.timeout))
        except TimeoutError as exc:
            raise HandlerError(f"cancelled after job_timeout={self.timeout}s") from exc

    def close(self) -> None:
        """Release the slot's event loop and helper thread (called from the slot's thread)."""
        if self._loop is not None:
            self._loop.close()
            self._loop = None
        if self._helper is not None:
            self._helper.stop()
            self._helper = None

    def _run_sync_with_timeout(self, job: Job) -> None:
        if self._helper is None:
            self._helper = HelperThread()
        future = self._helper.submit(self.target, job)
        try:
            future.result(self.timeout)
        except concurrent.futures.TimeoutError as exc:
            # A thread cannot be killed: abandon it; its late result goes nowhere.
            self._helper.stop()
            self._helper = None
            raise HandlerError(f"abandoned after job_timeout={self.timeout}s") from exc


Call = tuple[concurrent.futures.Future[Any], Callable[[], Any]]


class HelperThread:
    """One daemon thread running calls in turn. Unlike ThreadPoolExecutor's threads, an
    abandoned one never holds up interpreter exit (a stuck handler must not block SIGTERM)."""

    def __init__(self) -> None:
        self._calls: queue.SimpleQueue[Call | None] = queue.SimpleQueue()
        threading.Thread(target=self._loop, name="jobqueue-handler", daemon=True).start()

    def submit(self, fn: Callable[[Job], Any], job: Job) -> concurrent.futures.Future[Any]:
        future: concurrent.futures.Future[Any] = concurrent.futures.Future()
        self._calls.put((future, functools.partial(fn, job)))
        return future

    def stop(self) -> None:
        self._calls.put(None)

    def _loop(self) -> None:
        while (item := self._calls.get()) is not None:
            future, call = item
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(call())
            except BaseException as exc:  # handed to the waiting slot, which decides
                future.set_exception(exc)


def load_callable(spec: str) -> Callable[[Job], Any]:
    module_name, _, attr = spec.partition(":")
    try:
        target = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise ConfigError([f"worker.handler.callable: cannot load {spec!r}: {exc}"]) from exc
    if not callable(target):
        raise ConfigError([f"worker.handler.callable: {spec!r} is not callable"])
    return target  # type: ignore[no-any-return]


def path_guard(settings: Settings) -> Callable[[Job], None]:
    """Reject jobs whose file resolves outside the allowed roots (a forged payload must not
    make an exec or python handler read /etc/shadow)."""
    roots = [
        Path(r).resolve() for r in settings.worker.allowed_roots or [settings.producer.scan_dir]
    ]

    def check(job: Job) -> None:
        resolved = Path(job.filepath).resolve()
        if not any(resolved.is_relative_to(root) for root in roots):
            raise ForbiddenPath(f"{job.filepath!r} is outside worker.allowed_roots")

    return check


def build_handler(settings: Settings) -> Handler:
    """A fresh handler for one slot (python handlers keep per-slot loops and threads)."""
    cfg = settings.worker.handler
    timeout = settings.worker.job_timeout
    if cfg.type == "noop":
        return noop_handler
    if cfg.type == "demo":
        return demo_handler
    inner: ExecHandler | PythonHandler = (
        ExecHandler(cfg.command, timeout)
        if cfg.type == "exec"
        else PythonHandler(load_callable(cfg.callable), timeout)
    )
    return GuardedHandler(path_guard(settings), inner)


class GuardedHandler:
    """A file-touching handler behind the allowed-roots check."""

    def __init__(self, guard: Callable[[Job], None], inner: ExecHandler | PythonHandler) -> None:
        self.guard = guard
        self.inner = inner

    def __call__(self, job: Job) -> None:
        self.guard(job)
        self.inner(job)

    def close(self) -> None:
        if isinstance(self.inner, PythonHandler):
            self.inner.close()


def close_handler(handler: Handler) -> None:
    """Handlers with per-slot resources have ``close``; plain functions do not."""
    close = getattr(handler, "close", None)
    if close is not None:
        close()
