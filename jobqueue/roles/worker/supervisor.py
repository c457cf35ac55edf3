"""The worker role: a supervisor and ``worker.processes`` worker processes.

``jobqueue --role=worker`` is the supervisor (Dramatiq and Celery's prefork pool have the same
shape). It runs no handler code. Its threads hold the leases of its worker processes
(leases.py), promote due jobs (promoter.py), and, in this loop, watch the processes:

- a process that exits is settled at once from its scoreboard (recovery.py: finished jobs
  acked, running ones charged one attempt, unstarted ones handed back), without waiting for
  its heartbeat to expire, and a new one takes its place (after a pause when it keeps dying
  young; a process that cannot even start for a configuration error stops the role, exit 2);
- a job that waited more than ``prefetch_max_wait`` to start is handed back, even when the
  process that claimed it is frozen;
- a job that outlives ``job_timeout`` (plus ``TIMEOUT_MARGIN``, for the handler's own
  enforcement to act first) retires its process: a replacement starts at once, the old one is
  drained (its other jobs get ``shutdown_grace`` to finish), then killed with its exec process
  groups, and the job is retried with the timeout as its error. Python cannot stop a thread;
  this is how a sync handler that hangs is stopped without ever running beside its retry.

SIGTERM/SIGINT: every process is drained (unstarted jobs handed back at once); after
``shutdown_grace`` (or at once, on ``stop_now``: a second signal) the stragglers are killed,
exec groups first, and their running jobs handed back without an attempt charged; then the
supervisor exits 0.

Worker processes are forked from a multiprocessing fork server (fast to start, and safe
while the supervisor's threads run); their Prometheus series are collected through
prometheus-client's multiprocess mode and served on the supervisor's metrics port.
"""

from __future__ import annotations

import math
import multiprocessing
import multiprocessing.connection
import os
import signal
import socket
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from multiprocessing.process import BaseProcess
from typing import Any

from prometheus_client import multiprocess

from jobqueue.config import Settings, format_duration
from jobqueue.engine import Engine, RedisError, RetryPolicy, jittered_backoff
from jobqueue.observe.logs import get_logger
from jobqueue.observe.metrics import Metrics
from jobqueue.roles.promoter import Promoter
from jobqueue.roles.worker.forkserver import worker_context
from jobqueue.roles.worker.handlers import EXEC_KILL_GRACE, kill_group
from jobqueue.roles.worker.leases import LeaseKeeper, Tenant
from jobqueue.roles.worker.process import ProcessSpec, serve
from jobqueue.roles.worker.recovery import Exit, settle
from jobqueue.roles.worker.scoreboard import Scoreboard, Slip, State, digest

log: Any = get_logger("jobqueue.supervisor")

WATCH_INTERVAL = 0.02
TIMEOUT_MARGIN = EXEC_KILL_GRACE + 1.0
EARLY_EXIT = 10.0  # a process dying sooner than this after its start counts toward a crash loop
RESTART_PAUSE_MAX = 30.0
SETTLE_AT_STOP = (
    5.0  # seconds past the grace to settle stopped processes before leaving it to the reaper
)
EXIT_CONFIG = 2


@dataclass(eq=False)
class Child:
    """One worker process, as its supervisor sees it."""

    position: int  # which of the worker.processes places it fills
    spec: ProcessSpec
    process: BaseProcess
    tenant: Tenant
    started_at: float
    retiring: bool = False  # timed out: drained, then killed; a replacement already runs
    stopping: bool = False  # the supervisor is shutting down
    deadline: float = math.inf  # when it is killed if it has not exited
    timeouts: dict[int, str] = field(default_factory=dict)
    exited: bool = False
    slips: list[Slip] = field(default_factory=list)  # its scoreboard when it exited
    settle_at: float = 0.0  # when to try settling its jobs (again)
    settle_failures: int = 0

    @property
    def board(self) -> Scoreboard:
        return self.spec.board

    @property
    def worker_id(self) -> str:
        return self.spec.worker_id


class Supervisor:
    """Starts, watches, restarts and stops the worker processes of one ``--role=worker``."""

    def __init__(
        self, settings: Settings, engine: Engine, metrics: Metrics, stop: threading.Event
    ) -> None:
        self.settings = settings
        self.engine = engine
        self.metrics = metrics
        self.stop = stop
        worker = settings.worker
        self.queues = tuple(worker.queue_of(p) for p in worker.priorities)
        self.policy = RetryPolicy.from_config(worker)
        self.context, self.metrics_dir = worker_context()
        self.keeper = LeaseKeeper(engine, worker.heartbeat_ttl)
        self.promoter = Promoter(engine, self.queues, worker.promote_interval)
        self.children: list[Child] = []
        self.child_settings = _for_children(settings, engine)
        self.host = socket.gethostname()
        self._early_exits: Counter[int] = Counter()
        self._spawn_at: dict[int, float] = {}
        self._fatal: str | None = None
        self._last_timeout_scan = 0.0
        self._backoff = jittered_backoff()
        self._stopping = False
        self._now = threading.Event()  # stop_now: the grace is over

    def run(self) -> int:
        """Run until ``stop`` is set; the exit code."""
        self.keeper.start()
        self.promoter.start()
        for position in range(self.settings.worker.processes):
            self._spawn(position)
        log.info(
            "worker started",
            processes=self.settings.worker.processes,
            slots_per_process=self.settings.worker.count,
            queues=list(self.queues),
        )
        while not self.stop.is_set() and self._fatal is None:
            self._watch()
            self._wait()
        self._shutdown()
        for thread in (self.promoter, self.keeper):  # both told first, then joined: in
            thread.halt()  # parallel, so Redis not answering delays the exit only once
        for thread in (self.promoter, self.keeper):
            thread.join(timeout=1)
        if self._fatal is not None:
            log.error("worker stopped: a worker process cannot start", error=self._fatal)
            return EXIT_CONFIG
        log.info("worker stopped")
        return 0

    def running_jobs(self) -> int:
        """Jobs its worker processes run now (their scoreboards; callable from any thread)."""
        children = [c for c in list(self.children) if not c.exited]
        return sum(s.state is State.RUNNING for c in children for s in c.board.slips())

    def stop_now(self) -> None:
        """Stop without waiting for running jobs: as when ``shutdown_grace`` runs out."""
        self._now.set()
        self.stop.set()

    # -- starting -----------------------------------------------------------------------------

    def _spawn(self, position: int) -> None:
        worker = self.settings.worker
        worker_id = f"{self.host.split('.')[0]}:{os.getpid()}:{position}:{uuid.uuid4().hex[:8]}"
        board = Scoreboard(self.context, worker.count + worker.prefetch)
        spec = ProcessSpec(self.child_settings, worker_id, self.queues, board)
        info = {
            "host": self.host,
            "supervisor_pid": os.getpid(),
            "started": datetime.now(UTC).isoformat(timespec="seconds"),
            "slots": worker.count,
            "heartbeat_ttl": worker.heartbeat_ttl,
        }
        tenant = Tenant(worker_id, self.queues, board, info)
        self.keeper.add(tenant)
        process = self.context.Process(
            target=serve, args=(spec,), name=f"jobqueue-worker-{position}"
        )
        process.start()
        tenant.pid = process.pid
        self.children.append(Child(position, spec, process, tenant, time.monotonic()))
        self._spawn_at.pop(position, None)

    # -- watching -----------------------------------------------------------------------------

    def _wait(self) -> None:
        sentinels = [c.process.sentinel for c in self.children if not c.exited]
        if sentinels:
            multiprocessing.connection.wait(sentinels, WATCH_INTERVAL)
        else:
            self.stop.wait(WATCH_INTERVAL)

    def _watch(self) -> None:
        now = time.monotonic()
        scan_timeouts = now - self._last_timeout_scan >= 0.25
        if scan_timeouts:
            self._last_timeout_scan = now
        for child in list(self.children):
            if child.exited or child.process.exitcode is not None:
                self._exited(child)
                continue
            if child.board.header.lost_lease:
                child.board.header.lost_lease = 0
                self.keeper.poke()
            self._rescue(child, now)
            if scan_timeouts:
                self._time_out(child, now)
            if now >= child.deadline:
                self._kill(child)
        for position, at in list(self._spawn_at.items()):
            if now >= at and not self.stop.is_set():
                self._spawn(position)

    def _rescue(self, child: Child, now: float) -> None:
        """Hand back jobs that have waited too long to start (the hub does it first; this is
        for a worker process too frozen to)."""
        limit = now - self.settings.worker.prefetch_max_wait
        if not any(e.state == State.RESERVED and e.since < limit for e in child.board.entries):
            return
        stale = child.board.take_back_stale(limit)
        if not stale:
            return
        try:
            for index, queue in enumerate(self.queues):
                wanted = Counter(s.digest for s in stale if s.queue == index)
                if wanted:
                    self._release_reserved(child, queue, wanted)
        except RedisError as exc:  # the hub releases them too when it runs again
            log.warning("could not hand back waiting jobs", worker=child.worker_id, error=str(exc))
        log.info(
            "handed back jobs that waited too long to start", worker=child.worker_id, n=len(stale)
        )

    def _release_reserved(self, child: Child, queue: str, wanted: Counter[int]) -> None:
        raws = []
        for raw in self.engine.held(queue, child.worker_id).reserved:
            key = digest(raw)
            if wanted[key] > 0:
                wanted[key] -= 1
                raws.append(raw)
        self.engine.release(queue, child.worker_id, raws)

    def _time_out(self, child: Child, now: float) -> None:
        limit = self.settings.worker.job_timeout
        if limit <= 0:
            return
        for slip in child.board.slips():
            late = now - slip.since > limit + TIMEOUT_MARGIN
            if slip.state is State.RUNNING and late and slip.index not in child.timeouts:
                reason = (
                    f"exceeded job_timeout={format_duration(limit)}; its worker process was stopped"
                )
                child.timeouts[slip.index] = reason
                log.warning(
                    "job timed out; retiring its worker process",
                    worker=child.worker_id,
                    pid=child.process.pid,
                )
                if not child.retiring:
                    self._retire(child, now)

    def _retire(self, child: Child, now: float) -> None:
        """Drain a process whose job timed out, kill it after the grace, replace it now."""
        child.retiring = True
        child.deadline = now + self.settings.worker.shutdown_grace
        child.process.terminate()
        if not self.stop.is_set():
            self._spawn(child.position)

    def _kill(self, child: Child) -> None:
        """SIGKILL a process that did not stop in time, with its exec process groups."""
        for slip in child.board.slips():
            if slip.pgid:
                kill_group(slip.pgid)
        child.process.kill()
        child.deadline = math.inf

    # -- a process has exited -----------------------------------------------------------------

    def _exited(self, child: Child) -> None:
        """Settle an exited process's jobs (again later while Redis does not answer)."""
        if not child.exited:
            self._first_sight(child)
        if not self._stopping:
            self._settle(child)

    def _settle(self, child: Child) -> None:
        now = time.monotonic()
        if now < child.settle_at:
            return
        expected = child.retiring or child.stopping
        code = child.process.exitcode
        crash = (
            None
            if expected
            else f"worker process {child.process.pid} {_describe_exit(code)} while running it"
        )
        try:
            settled = settle(
                self.engine,
                child.worker_id,
                self.queues,
                child.slips,
                self.policy,
                Exit(crash, child.timeouts),
            )
            self._let_go(child)
        except RedisError as exc:
            child.settle_failures += 1
            child.settle_at = now + self._backoff(child.settle_failures)
            if child.settle_failures == 1:
                log.warning(
                    "cannot settle an exited worker process until Redis answers",
                    worker=child.worker_id,
                    error=str(exc),
                )
            return
        self.children.remove(child)
        for queue, n in settled.queues.items():
            self.metrics.reaper_recovered.labels(queue).inc(n)
        if settled.total or not expected:
            (log.info if expected else log.warning)(
                "worker process exited",
                worker=child.worker_id,
                pid=child.process.pid,
                exit=_describe_exit(code),
                acked=settled.acked,
                charged=settled.charged,
                released=settled.released,
            )

    def _first_sight(self, child: Child) -> None:
        """The moment a process is seen gone: its exec groups go too, a new process takes
        its place (unless it was stopped on purpose), its scoreboard is read once."""
        child.exited = True
        child.process.join()
        child.slips = list(child.board.slips())
        for slip in child.slips:
            if slip.pgid and slip.state is State.RUNNING:
                kill_group(slip.pgid)
        self._mark_dead(child.process.pid)
        if not (child.retiring or child.stopping):
            self._replace(child, child.process.exitcode)

    def _let_go(self, child: Child) -> None:
        """Stop holding the lease; leave the registry only with empty lists (otherwise the
        reaper must find this worker dead and settle what is left)."""
        self.keeper.remove(child.worker_id)
        if any(self.engine.held(queue, child.worker_id) for queue in self.queues):
            log.warning(
                "jobs left in an exited worker's lists; leaving them to the reaper",
                worker=child.worker_id,
            )
            return
        lease = child.tenant.lease
        if lease is not None:
            self.engine.registry.deregister(child.worker_id, lease.token, by_owner=True)

    def _replace(self, child: Child, code: int | None) -> None:
        if not child.board.header.ready and code == EXIT_CONFIG:
            self._fatal = f"worker process exited {code} at start (see its log line above)"
            return
        if time.monotonic() - child.started_at < EARLY_EXIT:
            self._early_exits[child.position] += 1
        else:
            self._early_exits[child.position] = 0
        pause = (
            min(RESTART_PAUSE_MAX, 0.5 * 2 ** self._early_exits[child.position])
            if self._early_exits[child.position]
            else 0.0
        )
        self._spawn_at[child.position] = time.monotonic() + pause

    def _mark_dead(self, pid: int | None) -> None:
        if pid is None:
            return
        multiprocess.mark_process_dead(pid, self.metrics_dir)  # type: ignore[no-untyped-call]

    # -- stopping -----------------------------------------------------------------------------

    def _shutdown(self) -> None:
        """Drain every process, kill what is left after the grace, then settle: the first
        two need no Redis and take at most the grace; settling gets ``SETTLE_AT_STOP`` more
        (a Redis that does not answer must not hold the exit: the reaper settles later)."""
        deadline = time.monotonic() + self.settings.worker.shutdown_grace
        self._stopping = True  # exits are only noted now; they are settled below
        for child in self.children:
            child.stopping = True
            child.deadline = min(child.deadline, deadline)
            if child.process.exitcode is None:
                child.process.terminate()
        self._spawn_at.clear()
        while any(not c.exited for c in self.children):
            if self._now.is_set():
                for child in self.children:
                    child.deadline = min(child.deadline, time.monotonic())
            self._watch()
            self._wait()
        settler = threading.Thread(target=self._settle_all, name="jobqueue-settle", daemon=True)
        settler.start()
        settler.join(SETTLE_AT_STOP)
        for child in list(self.children):  # Redis did not answer in time: the reaper settles these
            log.warning("leaving an exited worker's jobs to the reaper", worker=child.worker_id)
            self.keeper.remove(child.worker_id)

    def _settle_all(self) -> None:
        while self.children:
            for child in list(self.children):
                child.settle_at = 0.0
                self._settle(child)
            if self.children:
                time.sleep(self._backoff(1))


def _describe_exit(code: int | None) -> str:
    if code is None:
        return "is still running"
    if code < 0:
        return f"was killed by {signal.Signals(-code).name}"
    return f"exited {code}"


def _for_children(settings: Settings, engine: Engine) -> Settings:
    """The settings worker processes get: an embedded Redis is reached through the socket
    the supervisor's embedded server listens on, not started again."""
    if settings.redis.url.startswith("embedded"):
        redis = settings.redis.model_copy(update={"url": engine.target.url, "addr": ""})
        return settings.model_copy(update={"redis": redis})
    return settings
