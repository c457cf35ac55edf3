"""The HTTP API in-process (httpx over the ASGI app, the app's lifespan run), on a real Redis:
every endpoint, every role refused where it must be, bad and oversize bodies, one error shape.
The figures must be the admin layer's own: the API and ``--json`` never disagree."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest

from jobqueue.admin import commands
from jobqueue.config import Settings
from jobqueue.engine import Engine
from jobqueue.errors import ConfigError
from jobqueue.server import audit
from jobqueue.server.app import create_app
from jobqueue.server.auth import Tokens
from tests import test_admin
from tests.conftest import make_settings
from tests.test_admin import bury, register

eng = test_admin.eng  # the fixture: an Engine on the flushed test Redis

pytestmark = pytest.mark.anyio
TOKENS = {"read": "r" * 20, "enqueue": "e" * 20, "admin": "a" * 20}
AUTH = {role: {"Authorization": f"Bearer {token}"} for role, token in TOKENS.items()}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def server_settings(redis_url: str, **server: Any) -> Settings:
    tokens = [{"name": f"{role}-bot", "role": role, "token": t} for role, t in TOKENS.items()]
    return make_settings(
        redis_url,
        worker={"max_payload_bytes": 32 << 10},
        server={"tokens": tokens, "max_body_bytes": 64 << 10, "max_batch": 50, **server},
    )


async def _client(
    settings: Settings, base_url: str = "http://api"
) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings)
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url=base_url) as client,
    ):
        yield client


@pytest.fixture
async def api(redis_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async for client in _client(server_settings(redis_url)):
        yield client


def error_of(response: httpx.Response, status: int) -> str:
    """The one error shape; returns its message."""
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"status", "code", "message", "details"}
    assert error["status"] == status and "\n" not in error["message"]
    return str(error["message"])


# -- jobs -----------------------------------------------------------------------------------


async def test_enqueue_one_or_a_list_and_ask_what_became_of_it(api: httpx.AsyncClient) -> None:
    one = await api.post(
        "/api/v1/queues/high/jobs", json={"payload": {"n": 1}}, headers=AUTH["enqueue"]
    )
    assert one.status_code == 201 and one.json()["enqueued"] == 1
    many = await api.post(
        "/api/v1/queues/low/jobs",
        json=[{"payload": i, "kind": "k"} for i in range(3)],
        params={"delay": "1h"},
        headers=AUTH["enqueue"],
    )
    assert many.json()["enqueued"] == 3
    job = await api.get(f"/api/v1/jobs/{one.json()['ids'][0]}", headers=AUTH["read"])
    assert job.json()["state"] == "pending" and job.json()["queue"] == "high"
    later = await api.get(f"/api/v1/jobs/{many.json()['ids'][0]}", headers=AUTH["read"])
    assert later.json()["state"] == "scheduled"
    assert "no job" in error_of(await api.get("/api/v1/jobs/nope", headers=AUTH["read"]), 404)


async def test_concurrent_requests_share_round_trips_and_keep_their_own_answers(
    api: httpx.AsyncClient, redis_url: str
) -> None:
    url = "/api/v1/queues/high/jobs"
    specs = [{"payload": i, "job_id": f"j{i}"} for i in range(40)] + [{"job_id": "j0"}]
    answers = await asyncio.gather(*(api.post(url, json=s, headers=AUTH["enqueue"]) for s in specs))
    assert [a.json()["ids"] for a in answers[:40]] == [[f"j{i}"] for i in range(40)]
    assert answers[40].status_code == 409  # its twin went in the same round trip or before
    delayed = await api.post(url, json=[{}], params={"delay": "1h"}, headers=AUTH["enqueue"])
    assert delayed.status_code == 201
    stats = commands.stats(server_settings(redis_url)).stats.queues["high"]
    assert (stats.pending, stats.scheduled) == (40, 1)


async def test_a_known_job_is_409_alone_and_null_in_a_list(api: httpx.AsyncClient) -> None:
    spec = {"payload": 1, "job_id": "order-1"}
    url = "/api/v1/queues/high/jobs"
    assert (await api.post(url, json=spec, headers=AUTH["enqueue"])).status_code == 201
    assert "order-1" in error_of(await api.post(url, json=spec, headers=AUTH["enqueue"]), 409)
    both = await api.post(url, json=[spec, {"payload": 2}], headers=AUTH["enqueue"])
    assert both.json()["duplicates"] == 1 and both.json()["ids"][0] is None


async def test_stats_peek_and_workers_are_the_admin_layers_own(
    api: httpx.AsyncClient, redis_url: str, eng: Engine
) -> None:
    settings = server_settings(redis_url)
    await api.post(
        "/api/v1/queues/high/jobs", json=[{"payload": i} for i in range(4)], headers=AUTH["admin"]
    )
    bury(eng, "low", "/dead")
    register(eng, "hostb:7:0:bbb", "open")
    stats = (await api.get("/api/v1/stats", headers=AUTH["read"])).json()
    assert stats == commands.stats(settings).as_json()
    assert stats["queues"]["high"]["pending"] == 4 and stats["dead_letter"] == 1
    for queue in ("high", "dlq", "scheduled", "completed"):
        peeked = await api.get(
            f"/api/v1/queues/{queue}/peek", params={"n": 3}, headers=AUTH["read"]
        )
        assert peeked.json() == commands.peek(settings, queue, 3).as_json()
    workers = (await api.get("/api/v1/workers", headers=AUTH["read"])).json()
    ages_apart = [{**w, "heartbeat_age_seconds": 0} for w in workers["workers"]]
    expected = [
        {**w, "heartbeat_age_seconds": 0} for w in commands.workers(settings).as_json()["workers"]
    ]
    assert ages_apart == expected  # the heartbeat ages moved on between the two reads
    assert {w["breaker"] for w in workers["workers"]} == {"closed", "open"}
    assert "no queue" in error_of(
        await api.get("/api/v1/queues/nope/peek", headers=AUTH["read"]), 404
    )


async def test_dead_letters_listed_requeued_one_filtered_all_and_purged(
    api: httpx.AsyncClient, eng: Engine
) -> None:
    for queue, path in [("high", "/a"), ("high", "/b"), ("low", "/c"), ("low", "/d")]:
        bury(eng, queue, path)
    dead = (await api.get("/api/v1/dlq", headers=AUTH["read"])).json()["entries"]
    assert [e["payload"]["filepath"] for e in dead] == ["/a", "/b", "/c", "/d"]
    first = dead[0]["payload"]["id"]
    one = await api.post(f"/api/v1/jobs/{first}/requeue", headers=AUTH["admin"])
    assert one.json() == {"action": "requeue", "done": 1, "missing": []}
    assert (await api.get(f"/api/v1/jobs/{first}", headers=AUTH["read"])).json()[
        "state"
    ] == "pending"
    filtered = await api.post(
        "/api/v1/dlq/requeue", json={"queue": "high", "n": 5}, headers=AUTH["admin"]
    )
    assert filtered.json()["moved"] == 1 and filtered.json()["remaining"] == 0
    plan = await api.post(
        "/api/v1/dlq/requeue", json={"all": True, "dry_run": True}, headers=AUTH["admin"]
    )
    assert plan.json()["moved"] == 2 and plan.json()["dry_run"]
    gone = await api.delete(f"/api/v1/jobs/{dead[2]['payload']['id']}", headers=AUTH["admin"])
    assert gone.json()["done"] == 1
    assert (
        await api.delete("/api/v1/dlq", params={"dry_run": True}, headers=AUTH["admin"])
    ).json()["purged"] == 1
    assert (await api.delete("/api/v1/dlq", params={"queue": "low"}, headers=AUTH["admin"])).json()[
        "purged"
    ] == 1
    for name in ("old", "mid", "new"):
        bury(eng, "low", f"/purge/{name}")
    oldest = await api.delete("/api/v1/dlq", params={"n": 2}, headers=AUTH["admin"])
    assert oldest.json()["purged"] == 2  # at most n, oldest first
    (left,) = (await api.get("/api/v1/dlq", headers=AUTH["read"])).json()["entries"]
    assert left["payload"]["filepath"] == "/purge/new"
    both = await api.post("/api/v1/dlq/requeue", json={"all": True, "n": 2}, headers=AUTH["admin"])
    assert "not both" in error_of(both, 422)
    bad = await api.post("/api/v1/dlq/requeue", json={"queue": "nope"}, headers=AUTH["admin"])
    assert "'nope' is not one of high, low" in error_of(bad, 422)


async def test_run_now_moves_a_scheduled_job_to_its_queue(api: httpx.AsyncClient) -> None:
    sent = await api.post(
        "/api/v1/queues/high/jobs",
        json={"payload": 1},
        params={"delay": "1h"},
        headers=AUTH["admin"],
    )
    job_id = sent.json()["ids"][0]
    moved = await api.post(f"/api/v1/jobs/{job_id}/run-now", headers=AUTH["admin"])
    assert moved.json()["done"] == 1
    assert (await api.get(f"/api/v1/jobs/{job_id}", headers=AUTH["read"])).json()[
        "state"
    ] == "pending"


async def test_a_delay_past_ten_years_is_refused_and_an_unreadable_due_time_is_shown_as_null(
    api: httpx.AsyncClient, redis_url: str
) -> None:
    """An adversarial run sent ``delay=300000000000s``: 201, and from then on the job and
    its queue's scheduled peek were 500 for every caller (year 11533; Lua wrote the due
    time as 8.64e+18). Delays are bounded now, and a due time stored before (or by another
    producer) reads as null."""
    url, headers = "/api/v1/queues/high/jobs", AUTH["admin"]
    for delay in ("300000000000s", "3651d", "-1s", "nan"):
        refused = await api.post(url, json={"payload": 1}, params={"delay": delay}, headers=headers)
        assert "delay" in error_of(refused, 422), delay
    ten_years = await api.post(url, json={"payload": 1}, params={"delay": "3650d"}, headers=headers)
    assert ten_years.status_code == 201
    job_id = ten_years.json()["ids"][0]
    engine = Engine.from_settings(server_settings(redis_url))
    queue = engine.keys.queue("high")
    engine.client.hset(queue.job(job_id), "due_ms", "8.64e+18")
    (raw,) = engine.client.zrange(queue.scheduled, 0, 0)
    engine.client.zadd(queue.scheduled, {raw: 8.64e18, b'{"id": "by-hand"}': float("inf")})
    shown = await api.get(f"/api/v1/jobs/{job_id}", headers=headers)
    assert shown.status_code == 200 and shown.json()["due_at"] is None
    peeked = await api.get("/api/v1/queues/scheduled/peek", headers=headers)
    assert peeked.status_code == 200, peeked.text
    assert [e.get("due") for e in peeked.json()["entries"]] == [None, None], peeked.text
    engine.close()


async def test_a_job_id_with_a_slash_is_reachable_by_every_row_action(
    api: httpx.AsyncClient,
) -> None:
    """``orders/17`` was accepted at enqueue and then unreachable: 404 and 405 (the path
    parameter stopped at the slash)."""
    headers = AUTH["admin"]
    sent = await api.post(
        "/api/v1/queues/high/jobs",
        json={"payload": 1, "job_id": "orders/17"},
        params={"delay": "1h"},
        headers=headers,
    )
    assert sent.json()["ids"] == ["orders/17"]
    for path in ("/api/v1/jobs/orders/17", "/api/v1/jobs/orders%2F17"):
        found = await api.get(path, headers=headers)
        assert found.status_code == 200 and found.json()["state"] == "scheduled", found.text
    moved = await api.post("/api/v1/jobs/orders%2F17/run-now", headers=headers)
    assert moved.json()["done"] == 1, moved.text
    assert (await api.get("/api/v1/jobs/orders/17", headers=headers)).json()["state"] == "pending"


# -- auth -----------------------------------------------------------------------------------

ENDPOINTS: list[tuple[str, str, Any, str]] = [
    ("GET", "/api/v1/stats", None, "read"),
    ("GET", "/api/v1/workers", None, "read"),
    ("GET", "/api/v1/queues/high/peek", None, "read"),
    ("GET", "/api/v1/jobs/x", None, "read"),
    ("GET", "/api/v1/dlq", None, "read"),
    ("GET", "/metrics", None, "read"),
    ("POST", "/api/v1/queues/high/jobs", {"payload": 1}, "enqueue"),
    ("POST", "/api/v1/jobs/x/requeue", None, "admin"),
    ("POST", "/api/v1/jobs/x/run-now", None, "admin"),
    ("DELETE", "/api/v1/jobs/x", None, "admin"),
    ("POST", "/api/v1/dlq/requeue", {"all": True}, "admin"),
    ("DELETE", "/api/v1/dlq", None, "admin"),
]
ROLES = ["read", "enqueue", "admin"]


async def test_every_role_is_refused_where_it_must_be(api: httpx.AsyncClient) -> None:
    for method, path, body, needed in ENDPOINTS:
        assert "no bearer token" in error_of(await api.request(method, path, json=body), 401)
        wrong = {"Authorization": "Bearer " + "x" * 20}
        assert "unknown token" in error_of(
            await api.request(method, path, json=body, headers=wrong), 401
        )
        for role in ROLES:
            answer = await api.request(method, path, json=body, headers=AUTH[role])
            if ROLES.index(role) < ROLES.index(needed):
                assert f"needs {needed}" in error_of(answer, 403), (method, path, role)
            else:
                assert answer.status_code not in (401, 403), (method, path, role, answer.text)
    assert (await api.get("/healthz")).json() == {"status": "ok"}
    assert (await api.get("/readyz")).json() == {"status": "ready"}


async def test_without_a_token_configured_every_caller_is_admin(redis_url: str) -> None:
    async for client in _client(make_settings(redis_url), "http://127.0.0.1:8080"):
        sent = await client.post("/api/v1/queues/low/jobs", json={"payload": 1})
        assert sent.status_code == 201
        assert (await client.delete("/api/v1/dlq")).status_code == 200
        local = {"Origin": "http://127.0.0.1:8080"}  # the dashboard itself
        assert (await client.post("/api/v1/dlq/requeue", json={}, headers=local)).is_success


@pytest.mark.parametrize(
    ("base_url", "headers", "method", "refused"),
    [
        # DNS rebinding: the attacker's name, resolved to 127.0.0.1, in the Host header
        ("http://evil.example:8080", {}, "GET", "Host 'evil.example:8080'"),
        ("http://127.0.0.1.evil.example", {}, "DELETE", "only loopback names"),
        # a cross-site page posting to the local server (a simple request: no preflight)
        ("http://127.0.0.1:8080", {"Origin": "https://evil.example"}, "DELETE", "Origin"),
        ("http://localhost:8080", {"Origin": "null"}, "POST", "no other site"),
        # another web server's page on this very host is another site too
        ("http://localhost:8080", {"Origin": "http://localhost:9999"}, "DELETE", "Origin"),
        ("http://localhost:8080", {"Origin": "http://localhost:80@evil.com"}, "POST", "Origin"),
    ],
)
async def test_without_a_token_other_sites_and_names_are_refused(
    redis_url: str,
    base_url: str,
    headers: dict[str, str],
    method: str,
    refused: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Every caller is admin with no token: a browser page must not be one (finding of an
    adversarial run: a cross-site POST and a foreign Host reached the purge)."""
    dead = "/api/v1/dlq" if method != "POST" else "/api/v1/dlq/requeue"
    said: list[dict[str, Any]] = []
    monkeypatch.setattr(audit, "log", SimpleNamespace(info=lambda _, **line: said.append(line)))
    async for client in _client(make_settings(redis_url), base_url):
        answer = await client.request(method, dead, headers=headers, json={})
        assert answer.status_code == 403, answer.text
        assert refused in answer.json()["error"]["message"]
        assert "server.tokens" in answer.json()["error"]["message"]
    if method != "GET":  # a refused change is audited like any other
        assert [(line["method"], line["status"]) for line in said] == [(method, 403)]


def test_tokens_from_a_file_and_its_bad_lines(tmp_path: Path) -> None:
    good = tmp_path / "tokens"
    good.write_text(
        "# name role token\nci enqueue " + "c" * 16 + "\n\nboard read " + "b" * 16 + "\n"
    )
    settings = make_settings("redis://127.0.0.1:1", server={"token_file": str(good)})
    tokens = Tokens.from_config(settings.server)
    assert tokens.identify("c" * 16) is not None and tokens.identify("c" * 15) is None
    assert tokens.identify("b" * 16).role == "read"  # type: ignore[union-attr]
    for line, words in [
        ("ci enqueue", "3 words"),
        ("ci root " + "c" * 16, "not one of read, enqueue, admin"),
        ("ci read short", "at least 16"),
        ("twin read " + "c" * 16, "'ci' and 'twin' have the same token"),
        ("ci2 read " + "é" * 16, "printable ASCII"),
    ]:
        (tmp_path / "bad").write_text(good.read_text() + line + "\n")
        bad = settings.server.model_copy(update={"token_file": str(tmp_path / "bad")})
        with pytest.raises(ConfigError, match=words):
            Tokens.from_config(bad)


# -- bad input ------------------------------------------------------------------------------


async def test_a_caller_is_refused_before_its_body_is_read(api: httpx.AsyncClient) -> None:
    """No token, or an unknown one, is 401 whatever the body: a malformed body was a 422
    (or 400) first, answered to anyone (an adversarial run)."""
    url = "/api/v1/queues/high/jobs"
    for body in (b"{bad", b"\xff\xfe", b'{"payload": 1}'):
        for auth in ({}, {"Authorization": "Bearer " + "n" * 20}, {"Authorization": "Basic x"}):
            headers = {**auth, "Content-Type": "application/json"}
            answer = await api.post(url, content=body, headers=headers)
            assert "token" in error_of(answer, 401), (body, auth)
            assert answer.headers["www-authenticate"] == "Bearer"
    lowercase = {"Authorization": "bearer " + TOKENS["enqueue"]}
    assert (await api.post(url, json={"payload": 1}, headers=lowercase)).status_code == 201


async def test_bad_bodies_are_422_naming_the_field(api: httpx.AsyncClient) -> None:
    url = "/api/v1/queues/high/jobs"
    headers = {**AUTH["enqueue"], "Content-Type": "application/json"}
    assert "JSON" in error_of(await api.post(url, content=b"{bad", headers=headers), 422)
    unknown = await api.post(url, json={"payload": 1, "prio": "x"}, headers=headers)
    assert "prio" in error_of(unknown, 422)
    typed = await api.post(url, json={"kind": ["x"]}, headers=headers)
    assert error_of(typed, 422) == "body.kind: Input should be a valid string"
    # One bad job of a list: its place as written, not the union's branches.
    listed = await api.post(url, json=[{"payload": 1}, {"kind": 1}], headers=headers)
    assert error_of(listed, 422) == "body[1].kind: Input should be a valid string"
    assert [d["field"] for d in listed.json()["error"]["details"]] == ["body[1].kind"]
    for number in (b"NaN", b"Infinity", b"1e400"):  # stored as null before: lost
        body = b'{"payload": {"ratio": ' + number + b', "ok": 1.5}}'
        refused = await api.post(url, content=body, headers=headers)
        assert "is not a JSON number" in error_of(refused, 422), number
    big = await api.post(url, json={"payload": "x" * 40_000}, headers=headers)
    assert "job 0: job of" in error_of(big, 422)  # over worker.max_payload_bytes
    assert "delay" in error_of(
        await api.post(url, json={}, params={"delay": "soon"}, headers=headers), 422
    )
    assert "no queue for priority 'urgent'" in error_of(
        await api.post("/api/v1/queues/urgent/jobs", json={}, headers=headers), 404
    )
    for loose in ({"all": "yes"}, {"n": "3"}):  # coerced before: true, 3
        coerced = await api.post("/api/v1/dlq/requeue", json=loose, headers=AUTH["admin"])
        assert next(iter(loose)) in error_of(coerced, 422)
    many = await api.post(url, json=[{}] * 51, headers=headers)
    assert "server.max_batch is 50" in error_of(many, 413)


async def test_oversize_bodies_are_413_declared_or_streamed(api: httpx.AsyncClient) -> None:
    url = "/api/v1/queues/high/jobs"
    headers = {**AUTH["enqueue"], "Content-Type": "application/json"}
    body = b'{"payload": "' + b"x" * (70 << 10) + b'"}'
    assert "max_body_bytes" in error_of(await api.post(url, content=body, headers=headers), 413)

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(body), 8192):
            yield body[start : start + 8192]

    streamed = await api.post(url, content=chunks(), headers=headers)
    assert "max_body_bytes" in error_of(streamed, 413)


async def test_redis_down_is_503_in_the_error_shape() -> None:
    async for client in _client(server_settings("redis://127.0.0.1:1")):
        answer = await client.get("/api/v1/stats", headers=AUTH["read"])
        assert "Redis" in error_of(answer, 503)
        assert "Redis" in error_of(await client.get("/readyz"), 503)


# -- operations -----------------------------------------------------------------------------


async def test_metrics_openapi_cors_and_unknown_paths(
    api: httpx.AsyncClient, redis_url: str
) -> None:
    metrics = await api.get("/metrics", headers=AUTH["read"])
    assert 'jobqueue_queue_length{queue="high"}' in metrics.text
    doc = (await api.get("/api/v1/openapi.json")).json()
    assert "/api/v1/queues/{priority}/jobs" in doc["paths"] and "/api/v1/events" in doc["paths"]
    assert {"JobSpec", "StatsView", "ErrorBody"} <= set(doc["components"]["schemas"])
    assert doc["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    # Each route documents the errors it answers with (schemathesis found 404, 409 and 413
    # undocumented, and token errors listed for the probes that take no token).
    answers = {
        (method.upper(), path): set(op["responses"])
        for path, ops in doc["paths"].items()
        for method, op in ops.items()
    }
    enqueue = answers[("POST", "/api/v1/queues/{priority}/jobs")]
    assert {"201", "400", "401", "403", "404", "409", "413", "422", "503"} == enqueue
    assert answers[("GET", "/healthz")] == {"200"}
    assert answers[("GET", "/readyz")] == {"200", "503"}
    metrics_doc = doc["paths"]["/metrics"]["get"]["responses"]["200"]["content"]
    assert "text/plain" in metrics_doc
    preflight = {"Origin": "https://ops.example", "Access-Control-Request-Method": "GET"}
    refused = await api.options("/api/v1/stats", headers=preflight)
    assert "access-control-allow-origin" not in refused.headers
    error_of(await api.get("/api/v1/nothing", headers=AUTH["read"]), 404)
    error_of(await api.get("/api/v1/nothing"), 401)  # no token: refused before routing
    # The dashboard's files no longer answer for every path the API does not know.
    error_of(await api.post("/api/v1/nothing", headers=AUTH["admin"]), 404)
    error_of(await api.delete("/api/v1/stats", headers=AUTH["admin"]), 405)
    wrong = await api.get("/api/v1/queues/high/jobs", headers=AUTH["admin"])
    assert error_of(wrong, 405) and wrong.headers["allow"] == "POST"
    shared = await api.put("/api/v1/dlq", headers=AUTH["admin"])  # two routes take this path
    assert error_of(shared, 405) and shared.headers["allow"] == "DELETE, GET"
    action = await api.put("/api/v1/jobs/x/run-now", headers=AUTH["admin"])
    assert "POST" in action.headers["allow"].split(", ")
    assert (await api.head("/")).status_code == 200
    page = await api.get("/")
    assert page.status_code == 200 and 'src="static/app.js"' in page.text
    assert (await api.get("/static/app.js")).status_code == 200
    async for client in _client(server_settings(redis_url, cors_origins=["https://ops.example"])):
        allowed = await client.options("/api/v1/stats", headers=preflight)
        assert allowed.headers["access-control-allow-origin"] == "https://ops.example"
