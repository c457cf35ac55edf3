"""Security against real servers: TLS with a throwaway CA (mutual TLS), and the ACL users of
deploy/redis/acl.conf, loaded as written (only switched on and given test passwords)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from typer.testing import CliRunner, Result

from jobqueue.admin import repairs
from jobqueue.cli import app
from jobqueue.config import Settings
from jobqueue.engine import Engine, Inspector
from jobqueue.errors import RedisUnavailable
from jobqueue.job import new_job
from tests.cluster import (
    Certificates,
    Node,
    acl_node,
    make_certificates,
    tls_node,
)
from tests.conftest import make_settings
from tests.helpers import REPO, kill_tree, settled, spawn, stop_process, wait_for, write_config
from tests.redis_server import redis_server_binary
from tests.test_e2e import e2e_settings, ran, started

W = "host:1:0:tls:0"


def cli(config: Path, *args: str) -> Result:
    return CliRunner().invoke(app, [*args, "--config", str(config)])


def one_error_line(result: Result) -> str:
    assert result.exit_code == 1, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


# -- TLS -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    return make_certificates(tmp_path_factory.mktemp("certs"))


@pytest.fixture(scope="module")
def tls_server(certs: Certificates) -> Iterator[Node]:
    node = tls_node(certs)
    try:
        node.start()
    except RuntimeError as exc:
        node.cleanup()
        pytest.fail(
            f"{redis_server_binary()} cannot serve TLS (a redis-server built with "
            f"BUILD_TLS=yes is required for this test): {exc}"
        )
    yield node
    node.cleanup()


def tls_settings(node: Node, scheme: str, **tls: Any) -> Settings:
    return make_settings(
        f"{scheme}://127.0.0.1:{node.port}/0",
        redis={"tls": tls, "dial_timeout": "2s", "max_retries": 0, "namespace": "jqtls"},
    )


@pytest.mark.parametrize(
    ("scheme", "enabled"), [("rediss", False), ("redis", True)], ids=["rediss-url", "tls.enabled"]
)
def test_engine_works_over_mutual_tls(
    tls_server: Node, certs: Certificates, scheme: str, enabled: bool
) -> None:
    settings = tls_settings(
        tls_server,
        scheme,
        enabled=enabled,
        ca_file=str(certs.ca),
        cert_file=str(certs.cert("client")),
        key_file=str(certs.key("client")),
    )
    engine = Engine.from_settings(settings)
    try:
        engine.ping()
        job = new_job("/secure", "high")
        assert engine.enqueue(job, "high")
        assert engine.wait_for_jobs("high", 1)  # the blocking client speaks TLS too
        engine.registry.register(W, {}, ["high"], ttl=30)
        (raw,) = engine.claim("high", W, 1) or []
        assert engine.ack("high", W, [engine.decode("high", raw)]) == [True]
        assert Inspector(engine).stats({"high": "high"}).completed == 1
    finally:
        Inspector(engine).purge_all()
        engine.close()


def test_wrong_ca_or_no_client_certificate_is_one_line_cannot_reach(
    tls_server: Node, certs: Certificates, tmp_path: Path
) -> None:
    client_cert = {"cert_file": str(certs.cert("client")), "key_file": str(certs.key("client"))}
    wrong_ca = tls_settings(tls_server, "rediss", ca_file=str(certs.other_ca), **client_cert)
    engine = Engine.from_settings(wrong_ca)
    with pytest.raises(RedisUnavailable) as caught:
        engine.ping()
    engine.close()
    where = f"cannot reach Redis at rediss://127.0.0.1:{tls_server.port}/0"
    assert (
        str(caught.value)
        == f"{where}: TLS certificate verification failed (check redis.tls.ca_file)"
    )

    line = one_error_line(cli(write_config(tmp_path / "c.yaml", wrong_ca), "admin", "stats"))
    assert line.endswith(str(caught.value)), line

    no_client_cert = tls_settings(tls_server, "rediss", ca_file=str(certs.ca))
    line = one_error_line(cli(write_config(tmp_path / "n.yaml", no_client_cert), "admin", "stats"))
    assert where in line, line


# -- ACL -------------------------------------------------------------------------------------

ACL_FILE = REPO / "deploy" / "redis" / "acl.conf"
ROLES = ("producer", "worker", "reaper", "admin")
ROOT = "jqtest-root"  # a test-only superuser for setup and ACL LOG; no role ever uses it


def password(role: str) -> str:
    return f"test-{role}-secret"


def enabled_acl(folder: Path) -> Path:
    """deploy/redis/acl.conf with each role's user switched on and given a test password, plus
    a superuser for the test itself. The rules are otherwise exactly the documented ones."""
    text = ACL_FILE.read_text()
    for role in ROLES:
        text, n = re.subn(  # after the rules: their resetpass would drop an earlier password
            rf"^user jobqueue-{role} off (.*)$",
            rf"user jobqueue-{role} on \1 >{password(role)}",
            text,
            flags=re.MULTILINE,
        )
        assert n == 1, f"{ACL_FILE} has no 'user jobqueue-{role} off ...' line"
    path = folder / "users.acl"
    path.write_text(f"{text.rstrip()}\nuser {ROOT} on >{password('root')} ~* &* +@all\n")
    return path


@pytest.fixture
def acl_server(tmp_path: Path) -> Iterator[Node]:
    node = acl_node(enabled_acl(tmp_path), ROOT, password("root"))
    try:
        node.start()
    except RuntimeError as exc:
        node.cleanup()
        pytest.fail(
            f"{redis_server_binary()} cannot load {ACL_FILE} (its selectors need Redis >= 7.0): "
            f"{exc}"
        )
    yield node
    node.cleanup()


def role_settings(node: Node, role: str, folder: Path) -> Settings:
    """Settings that log in as the role's user, the password read from a file."""
    secret = folder / f"{role}.password"
    secret.write_text(password(role) + "\n")
    settings = e2e_settings(f"redis://127.0.0.1:{node.port}/0", allowed_roots=["/data"])
    settings.redis.username = f"jobqueue-{role}"
    settings.redis.password_file = str(secret)
    return settings


def denials(node: Node) -> list[tuple[str, str]]:
    with node.client() as client:
        return [(e["username"], e["object"]) for e in client.acl_log()]


def test_each_role_runs_with_only_its_acl_rules(acl_server: Node, tmp_path: Path) -> None:
    settings = {role: role_settings(acl_server, role, tmp_path) for role in ROLES}
    producer = Engine.from_settings(settings["producer"])
    admin = Engine.from_settings(settings["admin"])
    gate = tmp_path / "gate"  # the held job waits for it: the victim is killed mid-job
    held = new_job("/data/held", "high", gate=str(gate))
    jobs = [(new_job(f"/data/{i}", p, sleep_ms=20), p) for i in range(20) for p in ("high", "low")]
    jobs.insert(0, (held, "high"))
    assert all(producer.enqueue_many(jobs))
    later = new_job("/data/later", "low", idempotency_key="k")
    assert producer.enqueue(later, "low", delay=0.2)
    assert producer.take_tokens(rate=100, burst=10) == 0
    forbidden = new_job("/etc/passwd", "high")  # outside worker.allowed_roots: dead-lettered
    assert producer.enqueue(forbidden, "high")
    log_file = tmp_path / "executions.log"
    env = {"JQ_TEST_LOG": str(log_file)}
    worker_config = write_config(tmp_path / "worker.yaml", settings["worker"])
    victim = spawn("worker", worker_config, **env)
    reaper = spawn("reaper", write_config(tmp_path / "reaper.yaml", settings["reaper"]), **env)
    try:
        wait_for(lambda: held.id in started(log_file))
        kill_tree(victim)  # its jobs are the reaper's to recover
        gate.touch()
        worker = spawn("worker", worker_config, **env)
        wait_for(lambda: settled(settings["admin"], admin, len(jobs) + 2), timeout=30)
    finally:
        codes = [stop_process(worker), stop_process(reaper)]
    assert codes == [0, 0]
    runs = ran(log_file)
    assert set(runs) == {job.id for job, _ in jobs} | {later.id}
    # A job the victim finished but had not yet acked when it was killed runs again: at
    # most one such job per slot of the victim (at-least-once, never lost).
    slots = settings["worker"].worker.count * settings["worker"].worker.processes
    assert len(jobs) + 1 <= sum(runs.values()) <= len(jobs) + 1 + slots
    stats = Inspector(admin).stats({"high": "high", "low": "low"})
    assert (stats.completed, stats.dead_letter, stats.registered) == (len(jobs) + 1, 1, 0)
    recovered = sum(
        q.counters.get("reaped", 0) + q.counters.get("released", 0) for q in stats.queues.values()
    )
    assert recovered >= 1, "the victim's jobs were recovered"
    assert admin.registry.last_sweep() is not None  # the reaper's note, read by admin workers
    assert admin.withdraw("low", '"bench_run":"none"') == 0  # admin bench's cleanup
    assert repairs.reap(settings["admin"]).recovered == 0  # admin reap: one sweep
    assert denials(acl_server) == [], "a role was refused a command its work needs"
    producer.close()
    admin.close()


def test_worker_credentials_cannot_purge_scan_or_delete(acl_server: Node, tmp_path: Path) -> None:
    admin_settings = role_settings(acl_server, "admin", tmp_path)
    worker_settings = role_settings(acl_server, "worker", tmp_path)
    admin = Engine.from_settings(admin_settings)
    dead = admin.keys.queue("high").dead
    admin.client.lpush(dead, b'{"id": "x"}')
    worker = Engine.from_settings(worker_settings)
    worker.ping()
    inspector = Inspector(worker)
    for attempt in (
        lambda: inspector.purge_dead(["high"]),
        inspector.purge_all,
        lambda: worker.client.unlink(dead),
        lambda: worker.client.delete(dead),
        lambda: worker.client.set(dead, b"overwritten"),
        lambda: worker.client.pexpire(dead, 1),
        lambda: worker.client.scan(0),
        lambda: worker.client.keys("*"),
        worker.client.flushall,
    ):
        with pytest.raises(redis.exceptions.NoPermissionError):
            attempt()
    worker.close()

    config = write_config(tmp_path / "worker.yaml", worker_settings)
    assert ("jobqueue-worker", "unlink") in denials(acl_server)

    for command in (["purge-dlq", "--yes"], ["purge-all", "--dev", "--yes"]):
        line = one_error_line(cli(config, "admin", *command))
        assert "permission denied by the Redis ACL (NOPERM)" in line, line
        assert password("worker") not in line
    assert admin.client.llen(dead) == 1, "the dead-letter list survived the worker's attempts"

    result = cli(
        write_config(tmp_path / "admin.yaml", admin_settings), "admin", "purge-dlq", "--yes"
    )
    assert result.exit_code == 0 and result.stdout.startswith("purged 1 dead-letter jobs")
    admin.close()
