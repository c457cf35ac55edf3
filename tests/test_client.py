"""The Python client against a real Redis and a real worker: jobs that are not files,
routing by kind, lookup by id through a job's life, and the mistakes a caller can make."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import settings as examples
from hypothesis import strategies as st

from jobqueue import Client, Duplicate, Job, JobRecord
from jobqueue.config import Settings
from jobqueue.errors import UsageError
from jobqueue.job import PayloadError, new_job
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
        with pytest.raises(UsageError, match="idempotency_key of 513 characters: at most 512"):
            client.enqueue({}, idempotency_key="k" * 513)
        with pytest.raises(UsageError, match="kind of 129 characters: at most 128"):
            client.enqueue({}, kind="k" * 129)
        for delay in (-1.0, 1e12, float("nan")):  # 1e12 s: a due time no reader could show
            with pytest.raises(UsageError, match="must be from 0 to 315360000 seconds"):
                client.enqueue({"n": 1}, delay=delay)
        assert client.stats().queues["low"].pending == 0, "nothing was sent"
        assert client.stats().queues["low"].scheduled == 0, "nothing was sent"


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


JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)


@examples(max_examples=300, deadline=None)
@example({"text": "NaN and -Infinity, in words"}, "NaN", "Infinity", "", '"\\')
@given(
    payload=JSON_VALUES,
    kind=st.text(max_size=20),
    filepath=st.text(max_size=20),
    idempotency_key=st.text(max_size=20),
    job_id=st.none() | st.from_regex(r"[!-~]{1,40}", fullmatch=True),
)
def test_prepare_serializes_exactly_what_the_job_model_would(
    payload: Any, kind: str, filepath: str, idempotency_key: str, job_id: str | None
) -> None:
    """Client.prepare writes a job's JSON from its fields (job.encode_fields) without
    building the model: the bytes must be the model's own (words such as NaN in strings
    included), and read back to the same job; its id is a version 4 UUID unless the
    caller chose one."""
    client = Client("redis://127.0.0.1:1/0")  # never connects: prepare is local
    spec = {"payload": payload, "kind": kind, "filepath": filepath}
    spec |= {"idempotency_key": idempotency_key, "job_id": job_id, "priority": "high"}
    prepared = client.prepare(spec)
    assert prepared.raw == prepared.job.to_json()
    assert Job.model_validate_json(prepared.raw).to_json() == prepared.raw
    if job_id is None:
        assert uuid.UUID(prepared.id).version == 4 and str(uuid.UUID(prepared.id)) == prepared.id


@pytest.mark.parametrize(
    "payload",
    [float("nan"), {"ratio": float("inf")}, [1.5, -float("inf")], {"s": "NaN", "n": float("nan")}],
)
def test_nan_and_infinities_are_refused_not_stored_as_null(payload: Any) -> None:
    """JSON has no NaN or Infinity; pydantic writes them as null, and a payload's numbers
    were lost without a word (an adversarial run: 201, then ``{"ratio": null}`` stored)."""
    client = Client("redis://127.0.0.1:1/0")
    with pytest.raises(PayloadError, match="is not a JSON number: send it as a string, or null"):
        client.prepare({"payload": payload})


def test_new_ids_differ_across_threads_and_forked_processes() -> None:
    """Ids come from pages of random bytes (job._random_bytes): a thread or a forked child
    must never hand out its parent's page again."""
    new_job("/warm", "high")  # this thread's page is drawn now, before the fork
    reader, writer = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - the child writes its ids and leaves
        os.write(writer, json.dumps([new_job("/c", "high").id for _ in range(50)]).encode())
        os._exit(0)
    os.close(writer)
    ids = [new_job("/p", "high").id for _ in range(50)]
    with ThreadPoolExecutor(4) as pool:
        ids += pool.map(lambda _: new_job("/t", "high").id, range(200))
    with os.fdopen(reader) as got:
        ids += json.load(got)
    os.waitpid(child, 0)
    assert len(set(ids)) == len(ids) == 300
