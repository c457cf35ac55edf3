"""Configuration: defaults, the example file, environment overrides, validation messages."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from jobqueue.config import (
    Settings,
    format_duration,
    load_settings,
    parse_duration,
    redact_url,
    redacted_dump,
)
from jobqueue.errors import ConfigError

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
    ],
)
def test_durations(text: object, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("bad", ["5 parsecs", "-1s", -3, True, "", "ms"])
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
