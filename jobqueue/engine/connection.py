"""Connections: one Redis, a Cluster, a Sentinel-managed primary, or an embedded server.

Every client gets bounded dial/read timeouts and never repeats a command by itself: a
command that timed out may have run, and replaying a claim or an enqueue without an
idempotency key would move or add a job twice (redis-py retries by default). What is safe to
repeat (reads, heartbeat renewals, registration, promotion) is repeated by the engine through
``repeat_policy`` (``redis.max_retries``, jittered exponential backoff from redis-py); what is
not is left to its caller, which knows how to reconcile (a worker re-reads its own lists).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import redis
from redis.backoff import EqualJitterBackoff, NoBackoff
from redis.cluster import ClusterNode, RedisCluster
from redis.retry import Retry
from redis.sentinel import Sentinel

from jobqueue.config import RedisConfig, redact_url
from jobqueue.engine.embedded import EmbeddedServer
from jobqueue.errors import OperationalError, RedisUnavailable
from jobqueue.observe.logs import get_logger

log: Any = get_logger("jobqueue.redis")

EMBEDDED_DEFAULT_DIR = Path(".jobqueue/embedded")

RedisClient = redis.Redis | RedisCluster


@dataclass(frozen=True, slots=True)
class Target:
    """Where to connect, as the operator may see it (no credentials)."""

    url: str
    display: str


def resolve_target(cfg: RedisConfig) -> Target:
    """Turn url/addr/db (or ``embedded``) into one URL; start the embedded server if asked."""
    url = cfg.url
    if cfg.addr:
        url = f"redis://{cfg.addr}/{cfg.db}"
    if url == "embedded" or url.startswith("embedded://"):
        data_dir = Path(url.removeprefix("embedded").removeprefix("://") or EMBEDDED_DEFAULT_DIR)
        socket_path = EmbeddedServer.ensure(data_dir)
        return Target(f"unix://{socket_path}?db={cfg.db}", f"embedded redis in {data_dir}")
    if cfg.sentinel.master_name:
        return Target(url, f"sentinel master {cfg.sentinel.master_name} via {cfg.sentinel.addrs}")
    return Target(url, redact_url(url))


def _password(cfg: RedisConfig) -> str | None:
    if cfg.password_file:
        try:
            return Path(cfg.password_file).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise OperationalError(f"redis.password_file: cannot read: {exc.strerror}") from exc
    return cfg.password or None


def _common_kwargs(cfg: RedisConfig, read_timeout: float) -> dict[str, Any]:
    kwargs: dict[str, Any] = {
        "socket_connect_timeout": cfg.dial_timeout,
        "socket_timeout": read_timeout,
        "retry": Retry(NoBackoff(), 0),
        "health_check_interval": 30,
    }
    if cfg.username:
        kwargs["username"] = cfg.username
    password = _password(cfg)
    if password:
        kwargs["password"] = password
    return kwargs


def _tls_kwargs(cfg: RedisConfig, url: str) -> dict[str, Any]:
    """TLS options when ``redis.tls.enabled`` or the URL says ``rediss://``; else none."""
    tls = cfg.tls
    if not (tls.enabled or url.startswith("rediss://")):
        return {}
    kwargs: dict[str, Any] = {"ssl": True}
    if tls.ca_file:
        kwargs["ssl_ca_certs"] = tls.ca_file
    if tls.cert_file:
        kwargs["ssl_certfile"] = tls.cert_file
    if tls.key_file:
        kwargs["ssl_keyfile"] = tls.key_file
    if tls.insecure_skip_verify:
        kwargs["ssl_cert_reqs"] = "none"
        kwargs["ssl_check_hostname"] = False
    return kwargs


def make_client(
    cfg: RedisConfig, target: Target, extra_read_timeout: float = 0.0, min_connections: int = 16
) -> RedisClient:
    """Build a client; ``extra_read_timeout`` widens the socket timeout for blocking claims,
    ``min_connections`` keeps the pool no smaller than the threads that may use it at once."""
    kwargs = _common_kwargs(cfg, cfg.read_timeout + extra_read_timeout)
    pool_size = max(min_connections, cfg.pool_size_multiplier * (os.cpu_count() or 1))
    if cfg.cluster.enabled or cfg.cluster.startup_nodes:
        nodes = [_node(addr) for addr in cfg.cluster.startup_nodes] or [_node_of_url(target.url)]
        return RedisCluster(
            startup_nodes=nodes, max_connections=pool_size, **kwargs, **_tls_kwargs(cfg, target.url)
        )
    if cfg.sentinel.master_name:
        sentinel = Sentinel(  # type: ignore[no-untyped-call]
            [_host_port(a) for a in cfg.sentinel.addrs],
            sentinel_kwargs=_sentinel_auth(cfg),
            socket_connect_timeout=cfg.dial_timeout,
            socket_timeout=cfg.read_timeout,
        )
        master: redis.Redis = sentinel.master_for(  # type: ignore[no-untyped-call]
            cfg.sentinel.master_name, db=cfg.db, **kwargs, **_tls_kwargs(cfg, target.url)
        )
        return master
    url = target.url
    tls = {} if url.startswith("unix://") else _tls_kwargs(cfg, url)
    if tls:  # the rediss:// scheme selects the TLS connection class; CA and certs still apply
        url = url.replace("redis://", "rediss://", 1)
        tls.pop("ssl")
    pool = redis.BlockingConnectionPool.from_url(  # redis.db applies where the url names none
        url, max_connections=pool_size, timeout=cfg.dial_timeout, db=cfg.db, **kwargs, **tls
    )
    return redis.Redis.from_pool(pool)  # the client owns its pool: close() disconnects it


def repeat_policy(cfg: RedisConfig) -> Retry:
    """How the engine repeats an operation that is safe to run twice: ``redis.max_retries``
    more attempts after a connection error or timeout, with redis-py's jittered backoff."""
    return Retry(EqualJitterBackoff(base=0.05, cap=2.0), cfg.max_retries)


BACKOFF_CAP = 5.0  # seconds: the longest a loop that lost Redis waits between attempts


def jittered_backoff(base: float = 0.05, cap: float = BACKOFF_CAP) -> Callable[[int], float]:
    """Seconds to wait after ``failures`` failures in a row: redis-py's equal-jitter
    exponential backoff, between half and all of ``min(cap, base * 2**failures)``. The jitter
    is applied after the cap (redis-py's ExponentialWithJitterBackoff caps after jittering,
    so every loop that lost Redis long enough waited exactly ``cap``: in lockstep), and the
    wait is never near zero (no hot loop). The exponent is bounded: an outage of any length
    never overflows it."""
    backoff = EqualJitterBackoff(cap=cap, base=base)
    return lambda failures: backoff.compute(min(max(failures, 0), 32))


class Outage:
    """One process's view of Redis trouble, shared by all of its loops (one per engine, and
    a process has one engine).

    The first loop to fail logs one warning, "lost Redis"; the first to succeed afterwards
    logs one line, "Redis back", with how long it was gone, and calls whoever must act at
    once then (the lease keeper renews, and registers again if Redis came back empty).
    Every other failed attempt is a debug line: an outage costs two lines per process, not
    one per loop per attempt.
    """

    def __init__(self, display: str) -> None:
        self.display = display
        self._lock = threading.Lock()
        self._since: float | None = None  # monotonic time of the first failure, while down
        self._failed_calls = 0
        self._listeners: list[Callable[[], None]] = []

    @property
    def down(self) -> bool:
        return self._since is not None

    def failed(self, component: str, exc: BaseException, retry_in: float) -> None:
        """A loop's call failed; it tries again in ``retry_in`` seconds."""
        with self._lock:
            first = self._since is None
            if first:
                self._since, self._failed_calls = time.monotonic(), 0
            self._failed_calls += 1
        fields = {
            "redis": self.display,
            "pid": os.getpid(),
            "noticed_by": component,
            "error": _first_line(exc),
        }
        if first:
            log.warning("lost Redis; retrying with backoff", **fields)
        else:
            log.debug("Redis still unreachable", **fields, retry_in=round(retry_in, 3))

    def succeeded(self) -> None:
        """A loop's call succeeded: if Redis was lost, it is back (cheap when it was not)."""
        if self._since is None:
            return
        with self._lock:
            since, self._since = self._since, None
            listeners, failed_calls = list(self._listeners), self._failed_calls
        if since is None:  # another loop saw it first
            return
        log.info(
            "Redis back",
            redis=self.display,
            pid=os.getpid(),
            after_s=round(time.monotonic() - since, 1),
            failed_calls=failed_calls,
        )
        for listener in listeners:
            listener()

    def when_back(self, listener: Callable[[], None]) -> Callable[[], None]:
        """Call ``listener`` each time Redis is back after an outage; returns the undo."""
        with self._lock:
            self._listeners.append(listener)

        def forget() -> None:
            with self._lock:
                if listener in self._listeners:
                    self._listeners.remove(listener)

        return forget


class Reconnect:
    """One loop's side of an outage: how long to wait after each failure in a row (jittered,
    ``jittered_backoff``), reported to the process's ``Outage``."""

    def __init__(self, outage: Outage, component: str, cap: float = BACKOFF_CAP) -> None:
        self.outage = outage
        self.component = component
        self.failures = 0
        self._backoff = jittered_backoff(cap=cap)
        self._refusal = ""  # the last error reply, so that a new one is logged once

    def failed(self, exc: BaseException) -> float:
        """Seconds to wait before the next attempt. An error reply (NOPERM, OOM, a script
        error) is not an outage: Redis answered. It is logged as a refusal, once per loop
        each time it changes, and retried with the same backoff."""
        self.failures += 1
        delay = self._backoff(self.failures)
        if isinstance(exc, redis.ResponseError):
            if _first_line(exc) != self._refusal:
                self._refusal = _first_line(exc)
                log.warning(
                    "Redis refused a command; retrying with backoff",
                    redis=self.outage.display,
                    noticed_by=self.component,
                    error=self._refusal,
                )
            return delay
        self.outage.failed(self.component, exc, delay)
        return delay

    def succeeded(self) -> None:
        self.failures = 0
        self._refusal = ""
        self.outage.succeeded()


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]


def _sentinel_auth(cfg: RedisConfig) -> dict[str, Any]:
    auth: dict[str, Any] = {}
    if cfg.sentinel.username:
        auth["username"] = cfg.sentinel.username
    if cfg.sentinel.password:
        auth["password"] = cfg.sentinel.password
    return auth


def _host_port(addr: str) -> tuple[str, int]:
    host, _, port = addr.rpartition(":")
    return host or "127.0.0.1", int(port or 6379)


def _node(addr: str) -> ClusterNode:
    host, port = _host_port(addr)
    return ClusterNode(host, port)  # type: ignore[no-untyped-call]


def _node_of_url(url: str) -> ClusterNode:
    parts = urlsplit(url)
    return ClusterNode(parts.hostname or "127.0.0.1", parts.port or 6379)  # type: ignore[no-untyped-call]


def describe_connection_error(exc: BaseException) -> str:
    """The reason part of 'cannot reach Redis at X: reason', without stack noise."""
    text = str(exc).strip() or type(exc).__name__
    lowered = text.lower()
    if "refused" in lowered:
        return "connection refused"
    if "timeout" in lowered or "timed out" in lowered:
        return "timed out"
    if "certificate verify failed" in lowered:
        return "TLS certificate verification failed (check redis.tls.ca_file)"
    if isinstance(exc, redis.exceptions.NoPermissionError) or "noperm" in lowered:
        return f"permission denied by the Redis ACL (NOPERM): {text.splitlines()[0]}"
    if "auth" in lowered or "password" in lowered:
        return "authentication failed"
    return text.splitlines()[0]


def unreachable(target: Target, exc: BaseException) -> RedisUnavailable:
    return RedisUnavailable(
        f"cannot reach Redis at {target.display}: {describe_connection_error(exc)}"
    )
