"""Configuration: defaults, the example file, environment overrides, validation messages."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import redis
import yaml

from jobqueue.config import (
    Settings,
    format_duration,
    load_settings,
    parse_duration,
    redact_url,
    redacted_dump,
)
from jobqueue.engine import Engine
from jobqueue.errors import ConfigError
from jobqueue.job import new_job

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "config" / "config.example.yaml"


def leaf_keys(data: dict[str, Any], prefix: str = "") -> set[str]:
    keys: set[str] = set()
    for key, value in data.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and value and key not in {"queues", "weights"}:
            keys |= leaf_keys(value, path + ".")
        else:
            keys.add(path)
    return keys


def test_example_file_documents_every_key_with_its_default() -> None:
    example = yaml.safe_load(EXAMPLE.read_text())
    defaults = Settings().model_dump(mode="json")
    assert leaf_keys(example) == leaf_keys(defaults)
    assert Settings(**example).model_dump() == Settings().model_dump()


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("500ms", 0.5),
        ("30s", 30),
        ("1m", 60),
        ("24h", 86400),
        ("7d", 604800),
        (2, 2.0),
        ("1.5s", 1.5),
        ("1h30m", 5400),  # Go's compound forms, as the Go original's users write them
        ("1m30s", 90),
        ("1.5h", 5400),
        ("300ms", 0.3),
        ("2h45m30.5s", 9930.5),
        ("1h 30m", 5400),
        ("250us", 0.00025),
        ("1d12h", 129600),
    ],
)
def test_durations(text: object, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(
    "bad", ["5 parsecs", "-1s", -3, True, "", "ms", "1h-30m", "h1", "1h30", "1m30x", "1.2.3s"]
)
def test_bad_durations(bad: object) -> None:
    with pytest.raises(ValueError):
        parse_duration(bad)


def test_durations_render_back() -> None:
    assert [format_duration(s) for s in (0.5, 30, 90, 3600, 0)] == [
        "500ms",
        "30s",
        "90s",
        "1h",
        "0s",
    ]


def test_environment_beats_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("worker:\n  count: 2\n  backoff: {base: 1s, max: 9s}\n")
    monkeypatch.setenv("JOBQUEUE_WORKER__COUNT", "7")
    monkeypatch.setenv("JOBQUEUE_WORKER__BACKOFF__MAX", "20s")
    monkeypatch.setenv("JOBQUEUE_REDIS__URL", "redis://example:6380/2")
    settings = load_settings(str(path))
    assert settings.worker.count == 7
    assert (settings.worker.backoff.base, settings.worker.backoff.max) == (1.0, 20.0)
    assert settings.redis.url == "redis://example:6380/2"


def test_config_env_var_names_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("reaper: {interval: 9s}\n")
    monkeypatch.setenv("JOBQUEUE_CONFIG", str(path))
    assert load_settings().reaper.interval == 9


def test_default_path_missing_means_defaults(tmp_cwd: Path) -> None:
    assert load_settings().worker.count == 4


def test_named_file_missing_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_settings(str(tmp_path / "nope.yaml"))


@pytest.mark.parametrize(
    ("yaml_text", "expected"),
    [
        ("worker: {cuont: 3}", "worker.cuont: unknown key"),
        ("nonsense: {}", "nonsense: unknown key"),
        ("worker: {count: 0}", "worker.count"),
        ("worker: {priorities: []}", "worker.priorities"),
        ("worker: {priorities: [high, high]}", "priorities must be unique"),
        ("worker: {priorities: [high, mid]}", "priority 'mid' has no entry in worker.queues"),
        ("worker: {weights: {high: 0, low: 1}}", "needs a weight > 0"),
        ("worker: {heartbeat_ttl: 500ms, claim_timeout: 100ms}", "heartbeat_ttl must be >= 1s"),
        ("worker: {heartbeat_ttl: 4s, claim_timeout: 3s}", "claim_timeout must be > 0"),
        ("worker: {backoff: {base: 5s, max: 1s}}", "base must be <= max"),
        ("server: {watchdog_timeout: 1s}", "server.watchdog_timeout: must be 0 (off) or >= 2s"),
        ("server: {cors_origins: ['not a url']}", "'not a url' is not an origin"),
        ("server: {cors_origins: ['https://a.example/']}", "with no path"),
        ("server: {cors_origins: ['https://a.example:99999']}", "is not an origin"),
        ("server: {cors_origins: ['http://*.example.com']}", "is not an origin"),
        ("server: {cors_origins: ['https://user@a.example']}", "is not an origin"),
        ("server: {cors_origins: ['https://A.example']}", "is not an origin"),
        ("worker: {queues: {high: 'a b', low: low}}", "may use only letters"),
        ("producer: {rate_limit_per_sec: -1}", "producer.rate_limit_per_sec"),
        ("circuit_breaker: {failure_threshold: 0}", "circuit_breaker.failure_threshold"),
        ("circuit_breaker: {failure_threshold: 1.5}", "circuit_breaker.failure_threshold"),
        ("circuit_breaker: {min_samples: 0}", "circuit_breaker.min_samples"),
        ("observability: {metrics_port: 70000}", "observability.metrics_port"),
        ("redis: {namespace: 'a{b}'}", "redis.namespace"),
        ("worker: {heartbeat_ttl: soon}", "invalid duration"),
        ("producer: {default_priority: urgent}", "producer.default_priority"),
        ("worker: {handler: {type: exec}}", "needs a non-empty command"),
        ("- just\n- a list", "top level must be a mapping"),
        ("worker: [unclosed", "invalid YAML"),
        ("redis: {url: 'http://db:6379'}", "redis.url: 'http://db:6379' is not a Redis URL"),
        ("redis: {url: '127.0.0.1:6470'}", "for host:port write redis://127.0.0.1:6470"),
        ("redis: {url: 'redis://:pw@db:port/0'}", "cannot parse 'redis://***@db"),
        ("redis: {url: 'redis://db:6379/zero'}", "the database must be a number"),
        ("redis: {url: 'redis:///0'}", "names no host"),
        ("redis: {url: 'unix://'}", "names no socket"),
        ("redis: {addr: 'redis://db:6379'}", "redis.addr: expected host:port"),
        ("redis: {cluster: {startup_nodes: [db]}}", "redis.cluster.startup_nodes.0"),
        ("redis: {write_timeout: 3s}", "write_timeout is not supported"),
        ("redis: {url: 'redis://a:1', addr: 'b:2'}", "set url or addr, not both"),
        ("redis: {url: 'redis://a:1/2', db: 3}", "db 3 contradicts the database in url (2)"),
        ("redis: {db: 1, cluster: {enabled: true}}", "db must be 0 with cluster.enabled"),
        ("worker: {job_timeout: 1h30}", "worker.job_timeout: invalid duration"),
    ],
)
def test_validation_names_the_key(tmp_path: Path, yaml_text: str, expected: str) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(yaml_text)
    with pytest.raises(ConfigError) as info:
        load_settings(str(path))
    assert any(expected in problem for problem in info.value.problems), info.value.problems


def test_secrets_are_redacted() -> None:
    settings = Settings(
        redis={
            "url": "redis://app:s3cret@db:6379/0",
            "password": "hunter2",  # type: ignore[arg-type]
            "sentinel": {"password": "x"},
        }
    )
    shown = yaml.safe_dump(redacted_dump(settings))
    assert "s3cret" not in shown and "hunter2" not in shown
    assert "***@db:6379" in shown
    assert redact_url("redis://127.0.0.1:6379/0") == "redis://127.0.0.1:6379/0"


def test_compound_durations_work_in_the_file_and_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("worker: {job_timeout: 1h30m, heartbeat_ttl: 1m30s}\n")
    monkeypatch.setenv("JOBQUEUE_REAPER__INTERVAL", "2m30s")
    settings = load_settings(str(path))
    assert (settings.worker.job_timeout, settings.worker.heartbeat_ttl) == (5400, 90)
    assert settings.reaper.interval == 150


def test_yaml_syntax_error_keeps_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("worker:\n  count: 2\n  priorities: [high, low\n")
    with pytest.raises(ConfigError) as info:
        load_settings(str(path))
    (problem,) = info.value.problems
    assert problem.startswith(f"{path}:4:1: invalid YAML: expected ',' or ']'")
    assert problem.endswith("(while parsing a flow sequence that starts at 3:15)")
    path.write_text("redis:\n  url: a: b\n")
    with pytest.raises(ConfigError, match=r"c\.yaml:2:9: invalid YAML: mapping values"):
        load_settings(str(path))


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        (
            "JOBQUEUE_WORKER__PRIORITIES",
            "high,low",
            """JOBQUEUE_WORKER__PRIORITIES: expected a JSON list such as ["high","low"], """
            "got 'high,low'",
        ),
        (
            "JOBQUEUE_WORKER__HANDLER__COMMAND",
            "python -m handler",
            "JOBQUEUE_WORKER__HANDLER__COMMAND: expected a JSON list such as",
        ),
        ("JOBQUEUE_WORKER__WEIGHTS", "high=8", "expected a JSON object such as {"),
        ("JOBQUEUE_WORKER__BACKOFF", "1s", "JOBQUEUE_WORKER__BACKOFF: expected a JSON object"),
        (
            "JOBQUEUE_WROKER__COUNT",
            "3",
            "JOBQUEUE_WROKER__COUNT: no setting wroker (did you mean JOBQUEUE_WORKER__COUNT?)",
        ),
        ("JOBQUEUE_WORKER__CUONT", "3", "did you mean JOBQUEUE_WORKER__COUNT?"),
        ("JOBQUEUE_REDIS__TLS__ENABELD", "1", "did you mean JOBQUEUE_REDIS__TLS__ENABLED?"),
        ("JOBQUEUE_NONSENSE__X", "1", "JOBQUEUE_NONSENSE__X: no setting nonsense"),
        ("JOBQUEUE_WORKER__COUNT__MAX", "1", "worker.count has no keys below it"),
    ],
)
def test_environment_mistakes_name_the_variable(
    tmp_cwd: Path, monkeypatch: pytest.MonkeyPatch, name: str, value: str, expected: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert info.value.problems == [info.value.problems[0]] and expected in info.value.problems[0]


def test_environment_that_is_not_a_setting_is_left_alone(
    tmp_cwd: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("JOBQUEUE_CONFIG_UNUSED", "JOBQUEUE_CRASH_AT", "JOBQUEUE_JOB_ID", "JOBQUEUE_DATA"):
        monkeypatch.setenv(name, "x")
    monkeypatch.setenv("JOBQUEUE_WORKER__QUEUES", '{"high": "h", "low": "l"}')
    monkeypatch.setenv("JOBQUEUE_WORKER__WEIGHTS__HIGH", "5")
    monkeypatch.setenv("JOBQUEUE_WORKER__WEIGHTS__LOW", "1")
    settings = load_settings()
    assert settings.worker.queues == {"high": "h", "low": "l"}
    assert settings.worker.weights == {"high": 5, "low": 1}


def test_redis_url_forms_that_work(tmp_path: Path) -> None:
    for url in ("redis://db", "rediss://u:p@db:6380/2", "unix:///run/redis.sock?db=1", "embedded"):
        Settings(redis={"url": url})  # type: ignore[arg-type]
    assert Settings(redis={"url": "embedded:///tmp/x"}).redis.url == "embedded:///tmp/x"  # type: ignore[arg-type]


def test_db_takes_effect_beside_a_url_or_comes_from_it(
    redis_url: str, raw_redis: redis.Redis
) -> None:
    """redis.db was ignored beside a url: now a url without a database takes it, and a url
    with one sets it (and a contradiction is refused, above)."""
    assert redis_url.endswith("/0")
    assert Settings(redis={"url": "redis://h:1/4"}).redis.db == 4  # type: ignore[arg-type]
    assert Settings(redis={"url": "unix:///s.sock?db=5"}).redis.db == 5  # type: ignore[arg-type]
    settings = Settings(redis={"url": redis_url.removesuffix("/0"), "db": 3})  # type: ignore[arg-type]
    engine = Engine.from_settings(settings)
    engine.enqueue(new_job("/in-db-3", "high"), "high")
    engine.close()
    in_db_3 = redis.Redis.from_url(redis_url.removesuffix("/0") + "/3")
    assert in_db_3.dbsize() > 0 and raw_redis.dbsize() == 0
    in_db_3.flushdb()
    in_db_3.close()


@pytest.mark.parametrize(
    ("role", "port"), [("worker", 9091), ("all", 9091), ("producer", 9092), ("reaper", 9093)]
)
def test_each_role_has_its_own_default_metrics_port(role: str, port: int) -> None:
    assert Settings().for_role(role).observability.metrics_port == port
    chosen = Settings(observability={"metrics_port": 9200})  # type: ignore[arg-type]
    assert chosen.for_role(role).observability.metrics_port == 9200
    off = Settings(observability={"metrics_port": 0})  # type: ignore[arg-type]
    assert off.for_role(role).observability.metrics_port == 0
