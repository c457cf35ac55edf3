"""Job handlers: what a worker slot runs for each job.

A handler is a callable taking the Job; returning means success, raising means failure (the
exception's message becomes ``last_error``). ``worker.job_timeout`` is enforced by each
kind in the way that kind allows:

- exec: the command runs in a process group of its own (a new session); at the timeout the
  whole group gets SIGTERM, then SIGKILL ``EXEC_KILL_GRACE`` later, so a shell's children go
  too. Its group id is shown to the supervisor (``on_spawn``), which kills the group when the
  worker process stops or dies with the command still running.
- async python: the coroutine is cancelled.
- sync python: Python cannot stop a thread, so the handler runs as it is and the supervisor
  ends the whole worker process when the job outlives its timeout (the other jobs of that
  process first get ``shutdown_grace`` to finish; see supervisor.py). No job ever runs on
  past its timeout beside its own retry.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import inspect
import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from jobqueue.config import HandlerConfig, Settings
from jobqueue.errors import ConfigError
from jobqueue.job import Job

Handler = Callable[[Job], None]
STDERR_TAIL = 2000
EXEC_KILL_GRACE = 1.0  # seconds between SIGTERM and SIGKILL of a timed-out exec group


class HandlerError(Exception):
    """A handler failure with an operator-readable message."""


class Unrunnable(HandlerError):
    """No run of this job can succeed here (an unknown kind, no file for a handler that
    needs one, a path outside the allowed roots): dead-letter it at once, never retry."""


class ForbiddenPath(Unrunnable):
    """The job's file is outside ``worker.allowed_roots``."""


def needs_file(job: Job, handler: str) -> None:
    if not job.filepath:
        raise Unrunnable(f"the {handler} handler needs a filepath; this job has none")


def noop_handler(job: Job) -> None:
    """Does nothing: for benchmarks of the queue itself."""


def demo_handler(job: Job) -> None:
    """The Go original's simulation: ~1 ms per KiB (capped at 1 s); paths with 'fail' fail."""
    needs_file(job, "demo")
    time.sleep(min(job.filesize / 1024 / 1000, 1.0))
    if "fail" in job.filepath.lower():
        raise HandlerError(f"simulated failure for {job.filepath}")


def kill_group(pgid: int, sig: int = signal.SIGKILL) -> None:
    """Signal a whole process group; one that is already gone is fine."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


class ExecHandler:
    """Runs ``command`` without a shell; exit 0 is success; stderr's tail is the error."""

    def __init__(
        self, command: list[str], timeout: float, on_spawn: Callable[[int], None] | None = None
    ) -> None:
        self.command = command
        self.timeout = timeout or None
        self.on_spawn = on_spawn

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
        if any("{filepath}" in arg for arg in self.command):
            needs_file(job, "exec")
        env = {
            **os.environ,
            "JOBQUEUE_JOB_ID": job.id,
            "JOBQUEUE_JOB_FILEPATH": job.filepath,
            "JOBQUEUE_JOB_PRIORITY": job.priority,
            "JOBQUEUE_JOB_JSON": job.to_json().decode(),
        }
        try:
            process = subprocess.Popen(
                self.argv(job),
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                start_new_session=True,  # its own process group: killed whole
            )
        except OSError as exc:
            raise HandlerError(f"cannot run {self.command[0]!r}: {exc.strerror}") from exc
        if self.on_spawn is not None:
            self.on_spawn(process.pid)
        try:
            _, stderr = self._wait(process)
        finally:
            kill_group(process.pid)  # whatever it left behind in its group goes with it
            if self.on_spawn is not None:
                self.on_spawn(0)
        if process.returncode != 0:
            tail = stderr[-STDERR_TAIL:].decode(errors="replace").strip()
            code = process.returncode
            raise HandlerError(f"exit {code}: {tail}" if tail else f"exit {code}")

    def _wait(self, process: subprocess.Popen[bytes]) -> tuple[bytes, bytes]:
        try:
            return process.communicate(timeout=self.timeout)
        except subprocess.TimeoutExpired:
            kill_group(process.pid, signal.SIGTERM)
            try:
                process.communicate(timeout=EXEC_KILL_GRACE)
            except subprocess.TimeoutExpired:
                kill_group(process.pid)
                process.communicate()
            raise HandlerError(f"killed after job_timeout={self.timeout}s") from None


class PythonHandler:
    """Calls ``package.module:function`` with the job; sync or async; one per slot."""

    def __init__(self, target: Callable[[Job], Any], timeout: float) -> None:
        self.target = target
        self.timeout = timeout or None
        self.is_async = inspect.iscoroutinefunction(target)
        self._loop: asyncio.AbstractEventLoop | None = None

    def __call__(self, job: Job) -> None:
        if not self.is_async:
            self.target(job)
            return
        if self._loop is None:
            self._loop = asyncio.new_event_loop()
        try:
            self._loop.run_until_complete(asyncio.wait_for(self.target(job), self.timeout))
        except TimeoutError as exc:
            raise HandlerError(f"cancelled after job_timeout={self.timeout}s") from exc

    def close(self) -> None:
        """Release the slot's event loop (called from the slot's thread)."""
        if self._loop is not None:
            self._loop.close()
            self._loop = None


def load_callable(spec: str, key: str = "worker.handler") -> Callable[[Job], Any]:
    """The callable ``package.module:function``; ConfigError naming ``key`` otherwise."""
    module_name, _, attr = spec.partition(":")
    try:
        target = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise ConfigError([f"{key}.callable: cannot load {spec!r}: {exc}"]) from exc
    if not callable(target):
        raise ConfigError([f"{key}.callable: {spec!r} is not callable"])
    return target  # type: ignore[no-any-return]


def path_guard(settings: Settings) -> Callable[[Job], None]:
    """Reject jobs whose file resolves outside the allowed roots (a forged payload must not
    make an exec or python handler read /etc/shadow)."""
    roots = [
        Path(r).resolve() for r in settings.worker.allowed_roots or [settings.producer.scan_dir]
    ]
    if Path("/") in roots:  # everything is allowed: spare every job a realpath (syscalls)
        return lambda job: None

    def check(job: Job) -> None:
        if not job.filepath:  # a job that is not a file reads none
            return
        resolved = Path(job.filepath).resolve()
        if not any(resolved.is_relative_to(root) for root in roots):
            raise ForbiddenPath(f"{job.filepath!r} is outside worker.allowed_roots")

    return check


def build_handler(settings: Settings, on_spawn: Callable[[int], None] | None = None) -> Handler:
    """A fresh handler for one slot (async python handlers keep a per-slot event loop);
    ``on_spawn(pgid)`` hears of each exec child's process group (0 when it is gone).
    Jobs are routed by ``kind``: ``worker.handlers[kind]``; no kind (or ``default``) goes to
    ``worker.handlers.default``, else ``worker.handler``."""
    worker = settings.worker
    routes = {kind: _one(cfg, settings, on_spawn) for kind, cfg in worker.handlers.items()}
    default = routes.pop("default", None) or _one(worker.handler, settings, on_spawn)
    return Router(default, routes)


class Router:
    """Runs each job with the handler of its kind; an unknown kind is Unrunnable."""

    def __init__(self, default: Handler, routes: dict[str, Handler]) -> None:
        self.default = default
        self.routes = routes

    def __call__(self, job: Job) -> None:
        if job.kind in ("", "default"):
            self.default(job)
            return
        handler = self.routes.get(job.kind)
        if handler is None:
            known = ", ".join(sorted(self.routes)) or "none"
            raise Unrunnable(f"no handler for kind {job.kind!r} (worker.handlers has: {known})")
        handler(job)

    def close(self) -> None:
        for handler in (self.default, *self.routes.values()):
            close_handler(handler)


def _one(cfg: HandlerConfig, settings: Settings, on_spawn: Callable[[int], None] | None) -> Handler:
    timeout = settings.worker.job_timeout
    if cfg.type == "noop":
        return noop_handler
    if cfg.type == "demo":
        return demo_handler
    inner: ExecHandler | PythonHandler = (
        ExecHandler(cfg.command, timeout, on_spawn)
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
