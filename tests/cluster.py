"""Throwaway multi-process Redis deployments for tests: a Cluster, a Sentinel trio, a TLS
server with a throwaway CA, and a server with ACL users.

Every process is a real ``redis-server`` (tests.redis_server.redis_server_binary()) on a free
loopback port with its own temporary folder and log file; none touches 127.0.0.1:6379. When a
process dies at start the error names the process and quotes its log, so a redis-server built
without TLS fails the TLS test with that reason instead of a timeout.
"""

from __future__ import annotations

import contextlib
import random
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis
from redis.cluster import RedisCluster

from tests.redis_server import free_port, redis_server_binary

SLOTS = 16384
ADDSLOTS_CHUNK = 2000  # CLUSTER ADDSLOTS takes a list; ADDSLOTSRANGE needs Redis 7


def cluster_port() -> int:
    """A free port P whose cluster bus port P+10000 is free too (no ``cluster-port`` before
    Redis 7), both below the kernel's ephemeral range: an outgoing connection of another
    test can take a port there between this check and the node's bind (a bus port drawn
    from 30000-40000 was taken that way, and the node exited at start)."""
    top = max(_ephemeral_floor() - 10000, 10001)
    for _ in range(200):
        port = random.randrange(10000, top)
        try:
            for candidate in (port, port + 10000):
                with socket.socket() as sock:
                    sock.bind(("127.0.0.1", candidate))
        except OSError:
            continue
        return port
    raise RuntimeError("no free port pair for a cluster node")


def _ephemeral_floor() -> int:
    """The lowest port Linux hands out for outgoing connections (32768 unless configured)."""
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def wait_until(
    what: str, condition: Callable[[], Any], timeout: float = 20.0, interval: float = 0.02
) -> Any:
    """Poll ``condition`` until truthy (errors count as not yet); RuntimeError on timeout."""
    deadline = time.monotonic() + timeout
    last_error: BaseException | None = None
    while time.monotonic() < deadline:
        try:
            value = condition()
        except (redis.RedisError, OSError) as exc:
            last_error, value = exc, None
        if value:
            return value
        time.sleep(interval)
    detail = f" (last error: {last_error})" if last_error else ""
    raise RuntimeError(f"timed out after {timeout}s waiting for {what}{detail}")


class Node:
    """One redis-server (or sentinel) process with its folder, log file and client options."""

    def __init__(
        self,
        *args: str,
        config_file: str = "",
        client_kwargs: dict[str, Any] | None = None,
        name: str = "redis-server",
        port: int = 0,
    ) -> None:
        self.port = port or free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="jq-node-"))
        self.args = list(args)
        self.config_file = config_file
        self.client_kwargs = client_kwargs or {}
        self.name = name
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def addr(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def log_file(self) -> Path:
        return self.dir / "redis.log"

    def launch(self) -> Node:
        """Start the process without waiting for it (see ``wait_ready``)."""
        command = [redis_server_binary()]
        if self.config_file:
            command.append(self.config_file)
        if "--tls-port" not in self.args:
            command += ["--port", str(self.port)]
        command += ["--bind", "127.0.0.1", "--dir", str(self.dir), "--logfile", str(self.log_file)]
        command += ["--daemonize", "no", *self.args]
        with self.console_file.open("wb") as console:  # config errors precede the log file
            self.process = subprocess.Popen(command, stdout=console, stderr=subprocess.STDOUT)
        return self

    def start(self) -> Node:
        return self.launch().wait_ready()

    def client(self, **overrides: Any) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, **{**self.client_kwargs, **overrides})

    @property
    def console_file(self) -> Path:
        return self.dir / "console.log"

    def log_tail(self, lines: int = 8) -> str:
        text = ""
        for path in (self.console_file, self.log_file):
            with contextlib.suppress(OSError):
                text += path.read_text(errors="replace")
        return "\n".join(text.splitlines()[-lines:]) or "(nothing logged)"

    def wait_ready(self, timeout: float = 10.0) -> Node:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is None or self.process.poll() is not None:
                code = None if self.process is None else self.process.returncode
                raise RuntimeError(
                    f"{self.name} on port {self.port} exited with {code} at start; its log:\n"
                    f"{self.log_tail()}"
                )
            try:
                with self.client(socket_timeout=1) as client:
                    client.ping()
                    return self
            except (redis.ConnectionError, redis.TimeoutError):
                time.sleep(0.02)
        raise RuntimeError(
            f"{self.name} on port {self.port} did not answer PING:\n{self.log_tail()}"
        )

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(sig)
            self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process is None:
            return
        self.kill(signal.SIGTERM)
        self.process = None

    def cleanup(self) -> None:
        try:
            self.stop()
        except subprocess.TimeoutExpired:
            self.kill()
        shutil.rmtree(self.dir, ignore_errors=True)


def start_all(nodes: Sequence[Node]) -> None:
    """Launch every process first, then wait for each: startup costs one server's time."""
    try:
        for node in nodes:
            node.launch()
        for node in nodes:
            node.wait_ready()
    except BaseException:
        for node in nodes:
            node.cleanup()
        raise


def kill_primary(primary: Node, replica: Node, lagging: float) -> None:
    """SIGKILL ``primary``. With ``lagging`` > 0 its replica is stopped (SIGSTOP) that many
    seconds first and resumed after: the writes of those seconds never reach it, as with a
    replica that falls behind under load or a slow link when the primary dies."""
    if lagging > 0 and replica.process is not None:
        replica.process.send_signal(signal.SIGSTOP)
        time.sleep(lagging)
    primary.kill()
    if lagging > 0 and replica.process is not None:
        replica.process.send_signal(signal.SIGCONT)


def info_field(client: redis.Redis, section: str, name: str) -> str:
    return str(client.info(section).get(name, ""))


# -- Redis Cluster -------------------------------------------------------------------------


class LocalCluster:
    """N masters with the 16384 slots split evenly, assigned by this fixture, and optionally
    one replica per master (``replicas=True``; ``kill_master_and_wait_failover``)."""

    def __init__(
        self, masters: int = 3, replicas: bool = False, node_timeout_ms: int = 5000
    ) -> None:
        def node(name: str) -> Node:
            return Node(
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                "nodes.conf",
                "--cluster-node-timeout",
                str(node_timeout_ms),
                "--save",
                "",
                "--appendonly",
                "no",
                "--repl-diskless-sync-delay",
                "0",
                name=name,
                port=cluster_port(),
            )

        self.nodes = [node(f"cluster node {i}") for i in range(masters)]
        self.replicas = [node(f"cluster replica {i}") for i in range(masters if replicas else 0)]

    @property
    def url(self) -> str:
        return f"redis://{self.nodes[0].addr}/0"

    @property
    def startup_nodes(self) -> list[str]:
        return [node.addr for node in self.nodes]

    def slot_ranges(self) -> list[range]:
        n = len(self.nodes)
        return [range(i * SLOTS // n, (i + 1) * SLOTS // n) for i in range(n)]

    def start(self) -> LocalCluster:
        start_all([*self.nodes, *self.replicas])
        try:
            self._form()
            self._attach_replicas()
        except BaseException:
            self.cleanup()
            raise
        return self

    def _form(self) -> None:
        first = self.nodes[0]
        for node, slots in zip(self.nodes, self.slot_ranges(), strict=True):
            with node.client() as client:
                for lo in range(slots.start, slots.stop, ADDSLOTS_CHUNK):
                    chunk = range(lo, min(lo + ADDSLOTS_CHUNK, slots.stop))
                    client.execute_command("CLUSTER ADDSLOTS", *chunk)
            if node is not first:
                with first.client() as client:
                    client.execute_command("CLUSTER MEET", "127.0.0.1", node.port)
        for node in self.nodes:
            with node.client() as client:
                wait_until(f"cluster_state:ok on port {node.port}", lambda c=client: self._ok(c))

    def _ok(self, client: redis.Redis, known: int = 0) -> bool:
        fields = client.cluster("INFO")  # parsed by redis-py into a dict of strings
        return (
            fields.get("cluster_state") == "ok"
            and int(fields.get("cluster_slots_assigned", 0)) == SLOTS
            and int(fields.get("cluster_known_nodes", 0)) == (known or len(self.nodes))
        )

    def _attach_replicas(self) -> None:
        """Each replica meets the cluster, then replicates its master (by index)."""
        if not self.replicas:
            return
        first = self.nodes[0]
        with first.client() as client:
            for replica in self.replicas:
                client.execute_command("CLUSTER MEET", "127.0.0.1", replica.port)
        everyone = len(self.nodes) + len(self.replicas)
        for master, replica in zip(self.nodes, self.replicas, strict=True):
            with master.client() as client:
                master_id = client.execute_command("CLUSTER MYID")
            with replica.client() as client:
                wait_until(
                    f"port {replica.port} to know every node",
                    lambda c=client: self._ok(c, everyone),
                )
                client.execute_command("CLUSTER REPLICATE", master_id)
                wait_until(
                    f"replica {replica.port} in sync",
                    lambda c=client: info_field(c, "replication", "master_link_status") == "up",
                )

    def kill_master_and_wait_failover(
        self, index: int, lagging: float = 0.0, timeout: float = 60.0
    ) -> float:
        """SIGKILL master ``index`` (see ``kill_primary`` for ``lagging``); seconds from the
        kill until its replica serves its slots as master."""
        replica = self.replicas[index]
        kill_primary(self.nodes[index], replica, lagging)
        started = time.monotonic()
        everyone = len(self.nodes) + len(self.replicas)

        def promoted() -> bool:
            with replica.client() as client:
                role = info_field(client, "replication", "role")
                return role == "master" and self._ok(client, everyone)

        wait_until("the replica to take over the slots", promoted, timeout=timeout, interval=0.05)
        return time.monotonic() - started

    def client(self) -> RedisCluster:
        return RedisCluster(host="127.0.0.1", port=self.nodes[0].port)

    def node_of_key(self, key: str) -> int:
        """Index of the master that holds ``key`` (by CLUSTER KEYSLOT and our slot split)."""
        with self.nodes[0].client() as client:
            slot = int(client.execute_command("CLUSTER KEYSLOT", key))
        return next(i for i, r in enumerate(self.slot_ranges()) if slot in r)

    def flush(self) -> None:
        """Empty every master (this cluster's own processes only) and drop cached scripts."""
        for node in self.nodes:
            with node.client() as client:
                client.flushall()
                client.script_flush()

    def cleanup(self) -> None:
        for node in (*self.nodes, *self.replicas):
            node.cleanup()


# -- Sentinel ------------------------------------------------------------------------------


class SentinelTrio:
    """A primary, one replica and one sentinel (quorum 1) watching master ``name``."""

    def __init__(self, name: str = "m", down_after_ms: int = 1000) -> None:
        self.name = name
        plain = ("--save", "", "--appendonly", "no", "--repl-diskless-sync-delay", "0")
        self.primary = Node(*plain, name="sentinel primary")
        self.replica = Node(
            *plain, "--replicaof", "127.0.0.1", str(self.primary.port), name="sentinel replica"
        )
        self.sentinel_dir = Path(tempfile.mkdtemp(prefix="jq-sentinel-conf-"))
        conf = self.sentinel_dir / "sentinel.conf"
        conf.write_text(
            f"sentinel monitor {name} 127.0.0.1 {self.primary.port} 1\n"
            f"sentinel down-after-milliseconds {name} {down_after_ms}\n"
            f"sentinel failover-timeout {name} 5000\n"
            f"sentinel parallel-syncs {name} 1\n"
        )
        self.sentinel = Node("--sentinel", config_file=str(conf), name="sentinel")

    @property
    def sentinel_addrs(self) -> list[str]:
        return [self.sentinel.addr]

    def start(self) -> SentinelTrio:
        start_all([self.primary, self.replica])
        try:
            # In sync before the sentinel starts: its first INFO of the primary then lists the
            # replica (the next one would come 10 s later).
            wait_until("the replica in sync", self._replica_in_sync)
            self.sentinel.start()
            wait_until("the sentinel to see the replica", self._sentinel_sees_replica)
        except BaseException:
            self.cleanup()
            raise
        return self

    def _replica_in_sync(self) -> bool:
        with self.replica.client() as client:
            return info_field(client, "replication", "master_link_status") == "up"

    def _sentinel_sees_replica(self) -> bool:
        with self.sentinel.client() as client:
            replicas = client.sentinel_slaves(self.name)
        return any(
            int(r.get("port", 0)) == self.replica.port and not r.get("is_disconnected")
            for r in replicas
        )

    def master_port(self) -> int:
        with self.sentinel.client() as client:
            _host, port = client.sentinel_get_master_addr_by_name(self.name)
        return int(port)

    def kill_primary_and_wait_failover(self, lagging: float = 0.0, timeout: float = 30.0) -> float:
        """SIGKILL the primary (see ``kill_primary`` for ``lagging``); seconds from the kill
        until the sentinel names the replica master."""
        kill_primary(self.primary, self.replica, lagging)
        started = time.monotonic()
        wait_until(
            "sentinel failover to the replica",
            lambda: self.master_port() == self.replica.port and self._replica_is_master(),
            timeout=timeout,
            interval=0.05,
        )
        return time.monotonic() - started

    def _replica_is_master(self) -> bool:
        with self.replica.client() as client:
            return info_field(client, "replication", "role") == "master"

    def cleanup(self) -> None:
        for node in (self.sentinel, self.replica, self.primary):
            node.cleanup()
        shutil.rmtree(self.sentinel_dir, ignore_errors=True)


# -- TLS -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Certificates:
    """A throwaway CA, a server certificate for 127.0.0.1/localhost, a client certificate,
    and an unrelated CA (a 'wrong CA' for negative tests)."""

    dir: Path

    @property
    def ca(self) -> Path:
        return self.dir / "ca.crt"

    @property
    def other_ca(self) -> Path:
        return self.dir / "other-ca.crt"

    def cert(self, name: str) -> Path:
        return self.dir / f"{name}.crt"

    def key(self, name: str) -> Path:
        return self.dir / f"{name}.key"


def _openssl(*args: str, cwd: Path) -> None:
    binary = shutil.which("openssl")
    if binary is None:
        raise RuntimeError("the TLS tests need the openssl command line tool on PATH")
    done = subprocess.run([binary, *args], cwd=cwd, capture_output=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"openssl {args[0]} failed: {done.stderr.decode(errors='replace')}")


def _key_args(key: str) -> list[str]:
    return ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", key]


def make_certificates(folder: Path) -> Certificates:
    """Create the CA and leaf certificates with the openssl CLI (EC P-256, valid two days)."""
    folder.mkdir(parents=True, exist_ok=True)
    for ca in ("ca", "other-ca"):
        _openssl(
            "req", "-x509", *_key_args(f"{ca}.key"), "-out", f"{ca}.crt", "-days", "2",
            "-subj", f"/CN=jobqueue test {ca}", cwd=folder,
        )  # fmt: skip
    extensions = {
        "server": "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n",
        "client": "extendedKeyUsage=clientAuth\n",
    }
    for leaf, ext in extensions.items():
        (folder / f"{leaf}.ext").write_text(ext)
        _openssl(
            "req", "-new", *_key_args(f"{leaf}.key"), "-out", f"{leaf}.csr",
            "-subj", f"/CN=jobqueue test {leaf}", cwd=folder,
        )  # fmt: skip
        _openssl(
            "x509", "-req", "-in", f"{leaf}.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
            "-CAcreateserial", "-out", f"{leaf}.crt", "-days", "2", "-extfile", f"{leaf}.ext",
            cwd=folder,
        )  # fmt: skip
    return Certificates(folder)


def tls_node(certs: Certificates, *args: str) -> Node:
    """A redis-server that listens only with TLS and requires a client certificate."""
    node = Node(
        "--port", "0", "--save", "", "--appendonly", "no",
        "--tls-cert-file", str(certs.cert("server")), "--tls-key-file", str(certs.key("server")),
        "--tls-ca-cert-file", str(certs.ca), "--tls-auth-clients", "yes",
        *args,
        client_kwargs={
            "ssl": True,
            "ssl_ca_certs": str(certs.ca),
            "ssl_certfile": str(certs.cert("client")),
            "ssl_keyfile": str(certs.key("client")),
        },
        name="TLS redis-server",
    )  # fmt: skip
    node.args += ["--tls-port", str(node.port)]
    return node


# -- ACL -----------------------------------------------------------------------------------


def acl_node(aclfile: Path, username: str, password: str) -> Node:
    """A redis-server whose users come from ``aclfile`` (copied into its folder); the test
    talks to it as ``username``."""
    node = Node(
        "--save", "", "--appendonly", "no",
        client_kwargs={"username": username, "password": password},
        name="ACL redis-server",
    )  # fmt: skip
    copy = node.dir / "users.acl"
    shutil.copyfile(aclfile, copy)
    node.args += ["--aclfile", str(copy)]
    return node


# -- workers ---------------------------------------------------------------------------------


def held_by_process(engine: Any, pid: int, queues: Sequence[str]) -> int:
    """Jobs held by the worker processes of the supervisor with this ``pid``."""
    ids = [w for w, info in engine.registry.workers().items() if info.get("supervisor_pid") == pid]
    held = [engine.held(queue, worker_id) for worker_id in ids for queue in queues]
    return sum(len(h.reserved) + len(h.processing) for h in held)
