"""The Python client against a real Redis and a real worker: jobs that are not files,
routing by kind, lookup by id through a job's life, and the mistakes a caller can make."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from jobqueue import Client, Duplicate, Job, JobRecord
from jobqueue.config import Settings
from jobqueue.errors import UsageError
from jobqueue.job import PayloadError
from tests.helpers import running_worker, write_config
from tests.sample_handlers import executions
from tests.test_worker import python_settings


@pytest.fixture
def routed(redis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """A worker that runs kind ``echo`` with a python handler and jobs without a kind with
    the demo handler; every other kind is unknown."""
    monkeypatch.setenv("JQ_TEST_LOG", str(tmp_path / "runs.ndjson"))
    return python_settings(
        redis_url,
        max_retries=3,
        handler={"type": "demo"},
        handlers={"echo": {"type": "python", "callable": "tests.sample_handlers:echo_payload"}},
    )


def test_payload_jobs_are_routed_by_kind_and_looked_up_to_completion(
    routed: Settings, tmp_path: Path
) -> None:
    with Client(settings=routed) as client, running_worker(routed):
        job = client.enqueue({"user": 42, "tags": ["a", "b"]}, kind="echo", priority="high")
        assert isinstance(job, Job) and job.filepath == ""
        done = client.wait(job.id, timeout=30)
        assert isinstance(done, JobRecord)
        assert (done.state, done.attempts, done.queue) == ("completed", 1, "high")
        assert done.started_at and done.finished_at and done.finished_at >= done.started_at
        filed = client.enqueue(filepath="/data/report.pdf")  # no kind: the demo handler
        assert client.wait(filed.id, timeout=30).state == "completed"
    runs = executions(tmp_path / "runs.ndjson")
    assert [(r["kind"], r["payload"]) for r in runs] == [("echo", {"user": 42, "tags": ["a", "b"]})]


def test_unknown_kind_and_missing_file_are_dead_lettered_after_one_attempt(
    routed: Settings,
) -> None:
    with Client(settings=routed) as client, running_worker(routed):
        unknown = client.enqueue({"x": 1}, kind="resize")
        no_file = client.enqueue({"x": 2})  # the demo handler needs a file
        for job, reason in ((unknown, "no handler for kind 'resize'"), (no_file, "filepath")):
            dead = client.wait(job.id, timeout=30)
            assert (dead.state, dead.attempts) == ("dead", 1), dead
            assert reason in dead.last_error
        assert client.stats().dead_letter == 2


def test_enqueue_refuses_what_it_cannot_keep(settings: Settings) -> None:
    with Client(settings=settings) as client:
        with pytest.raises(UsageError, match=r"unknown priority 'urgent'.*high, low"):
            client.enqueue({"a": 1}, priority="urgent")
        with pytest.raises(PayloadError, match="payload"):
            client.enqueue(object())
        with pytest.raises(PayloadError, match="max_payload_bytes"):
            client.enqueue("x" * settings.worker.max_payload_bytes)
        with pytest.raises(UsageError, match="job_id"):
            client.enqueue({}, job_id="has space")
        with pytest.raises(UsageError, match="unknown job field prio"):
            client.enqueue_many([{"payload": 1, "prio": "high"}])
        assert client.stats().queues["low"].pending == 0, "nothing was sent"


def test_ids_and_idempotency_keys_dedupe_and_batches_say_which_went_in(
    settings: Settings,
) -> None:
    with Client(settings=settings) as client:
        client.enqueue({"n": 1}, job_id="order-17:mail")
        with pytest.raises(Duplicate):
            client.enqueue({"n": 1}, job_id="order-17:mail")
        client.enqueue({"n": 2}, idempotency_key="k-2")
        with pytest.raises(Duplicate):
            client.enqueue({"n": 2}, idempotency_key="k-2")
        out = client.enqueue_many(
            [{"payload": 3, "job_id": "order-17:mail"}, {"payload": 4, "priority": "high"}]
        )
        assert out[0] is None and isinstance(out[1], Job)
        record = client.get("order-17:mail")
        assert record is not None and record.state == "pending"
        assert client.stats().queues["low"].pending == 2
        assert client.stats().queues["high"].pending == 1
        with pytest.raises(TimeoutError, match="still pending"):
            client.wait("order-17:mail", timeout=0.2)
        with pytest.raises(LookupError):
            client.wait("no-such-job", timeout=1)
        assert client.get("no-such-job") is None


def test_client_from_a_config_file_or_a_url(settings: Settings, tmp_path: Path) -> None:
    config = write_config(tmp_path / "config.yaml", settings)
    with Client.from_config(str(config)) as client:
        job = client.enqueue({"via": "config"})
    with Client(settings.redis.url) as client:
        found = client.get(job.id)
    assert found is not None and found.state == "pending"


def test_admin_job_and_payload_enqueue_from_the_command_line(
    settings: Settings, tmp_path: Path
) -> None:
    """``admin enqueue --payload/--kind``, ``admin enqueue -`` (NDJSON), ``admin job ID``:
    the real command, each line checked before any is sent."""
    config = str(write_config(tmp_path / "config.yaml", settings))

    def run(*argv: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "jobqueue", "admin", *argv, "--config", config]
        return subprocess.run(command, input=stdin, capture_output=True, text=True, check=False)

    one = run("enqueue", "--kind", "resize", "--payload", '{"image": 7}', "--json")
    assert one.returncode == 0, one.stderr
    job_id = json.loads(one.stdout)["ids"][0]
    lines = '{"payload": 1}\n\n{"payload": 2, "priority": "high", "job_id": "n-2"}\n'
    many = run("enqueue", "-", "--json", stdin=lines)
    assert json.loads(many.stdout)["enqueued"] == 2, many.stderr
    bad = run("enqueue", "-", stdin='{"payload": 3}\n{"payload": 4, "priority": "urgent"}\n')
    assert bad.returncode == 2 and "stdin line 2: unknown priority 'urgent'" in bad.stderr
    assert "Traceback" not in bad.stderr
    shown = run("job", job_id, "--json")
    assert json.loads(shown.stdout)["state"] == "pending"
    table = run("job", "n-2")
    assert table.returncode == 0 and "pending" in table.stdout and "high" in table.stdout
    missing = run("job", "nope")
    assert missing.returncode == 1 and "no job 'nope'" in missing.stderr
    with Client(settings=settings) as client:
        assert client.stats().queues["low"].pending == 2, "the bad input sent nothing"
