"""Configuration: one YAML file, environment overrides, every key defaulted and validated.

Precedence, highest first: environment variables ``JOBQUEUE_<SECTION>__<KEY>`` (nested keys
joined by ``__``, for example ``JOBQUEUE_REDIS__URL`` or ``JOBQUEUE_WORKER__BACKOFF__BASE``),
then the YAML file, then the defaults below. Unknown keys are errors so that a typo is never
silently ignored. Durations accept ``500ms``, ``30s``, ``1m``, ``24h``, ``7d`` or plain seconds.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit, urlunsplit

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from jobqueue.errors import ConfigError

DEFAULT_CONFIG_PATH = Path("config/config.yaml")
CONFIG_ENV_VAR = "JOBQUEUE_CONFIG"

NAME_PATTERN = r"^[A-Za-z0-9_.\-]+$"  # names become part of Redis keys and SCAN patterns
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}


def parse_duration(value: object) -> float:
    """Accept ``30s``-style strings and plain numbers; return seconds as a float."""
    if isinstance(value, bool):
        raise ValueError("expected a duration such as 500ms, 30s, 1m or 24h")
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError("duration must not be negative")
        return float(value)
    if isinstance(value, str):
        match = _DURATION.match(value)
        if match:
            return float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
    raise ValueError(f"invalid duration {value!r}: expected e.g. 500ms, 30s, 1m, 24h")


def format_duration(seconds: float) -> str:
    """Render seconds back in the shortest unit that shows them exactly."""
    millis = round(seconds * 1000)
    if millis == 0:
        return "0s"
    for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000)):
        if millis and millis % size == 0:
            return f"{millis // size}{unit}"
    return f"{millis}ms"


Duration = Annotated[
    float, BeforeValidator(parse_duration), PlainSerializer(format_duration, return_type=str)
]


class Section(BaseModel):
    """Base of every config section: unknown keys are errors, assignment is validated."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class TLSConfig(Section):
    enabled: bool = False
    ca_file: str = ""
    cert_file: str = ""
    key_file: str = ""
    insecure_skip_verify: bool = False


class ClusterConfig(Section):
    enabled: bool = False
    startup_nodes: list[str] = Field(default_factory=list)


class SentinelConfig(Section):
    master_name: str = ""
    addrs: list[str] = Field(default_factory=list)
    username: str = ""
    password: str = ""


class RedisConfig(Section):
    url: str = "redis://127.0.0.1:6379/0"
    addr: str = ""
    username: str = ""
    password: str = ""
    password_file: str = ""
    db: int = Field(default=0, ge=0)
    namespace: str = Field(default="jobqueue", pattern=NAME_PATTERN)
    pool_size_multiplier: int = Field(default=10, ge=1)
    dial_timeout: Duration = 5.0
    read_timeout: Duration = 3.0
    write_timeout: Duration = 3.0
    max_retries: int = Field(default=3, ge=0)
    wait_replicas: int = Field(default=0, ge=0)
    wait_timeout: Duration = 1.0
    tls: TLSConfig = Field(default_factory=TLSConfig)
    cluster: ClusterConfig = Field(default_factory=ClusterConfig)
    sentinel: SentinelConfig = Field(default_factory=SentinelConfig)

    @model_validator(mode="after")
    def _wait_timeout_positive(self) -> RedisConfig:
        if self.wait_timeout <= 0:
            raise ValueError("wait_timeout must be > 0")
        return self


class BackoffConfig(Section):
    base: Duration = 0.5
    max: Duration = 10.0

    @model_validator(mode="after")
    def _base_not_above_max(self) -> BackoffConfig:
        if self.base > self.max:
            raise ValueError("base must be <= max")
        return self


class HandlerConfig(Section):
    type: Literal["demo", "exec", "python", "noop"] = "demo"
    command: list[str] = Field(default_factory=list)
    callable: str = ""

    @model_validator(mode="after")
    def _needs_its_target(self) -> HandlerConfig:
        if self.type == "exec" and not self.command:
            raise ValueError("type exec needs a non-empty command")
        if self.type == "python" and ":" not in self.callable:
            raise ValueError("type python needs callable: 'package.module:function'")
        return self


class WorkerConfig(Section):
    count: int = Field(default=4, ge=1, le=1024)
    processes: int = Field(default=1, ge=1, le=256)
    heartbeat_ttl: Duration = 30.0
    max_retries: int = Field(default=3, ge=0, le=1000)
    backoff: BackoffConfig = Field(default_factory=BackoffConfig)
    priorities: list[str] = Field(default_factory=lambda: ["high", "low"], min_length=1)
    queues: dict[str, str] = Field(default_factory=lambda: {"high": "high", "low": "low"})
    weights: dict[str, int] = Field(default_factory=lambda: {"high": 8, "low": 2})
    claim_timeout: Duration = 1.0
    prefetch: int = Field(default=32, ge=0, le=1000)
    prefetch_max_wait: Duration = 0.1
    job_timeout: Duration = 300.0
    shutdown_grace: Duration = 30.0
    promote_interval: Duration = 0.5
    completed_max: int = Field(default=10000, ge=0)
    completed_ttl: Duration = 86400.0  # how long a finished job's record answers lookups
    max_payload_bytes: int = Field(default=1 << 20, ge=256)
    allowed_roots: list[str] = Field(default_factory=list)
    handler: HandlerConfig = Field(default_factory=HandlerConfig)

    @field_validator("completed_ttl")
    @classmethod
    def _at_least_a_second(cls, value: float) -> float:
        if value < 1:
            raise ValueError("must be >= 1s")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> WorkerConfig:
        problems = []
        if len(set(self.priorities)) != len(self.priorities):
            problems.append("priorities must be unique")
        for name in self.priorities:
            queue = self.queues.get(name, "")
            if not queue:
                problems.append(f"priority {name!r} has no entry in worker.queues")
            elif not re.match(NAME_PATTERN, queue):
                problems.append(f"queue {queue!r} may use only letters, digits, '_', '.', '-'")
            if self.weights.get(name, 0) <= 0:
                problems.append(f"priority {name!r} needs a weight > 0 in worker.weights")
        if self.heartbeat_ttl < 1:
            problems.append("heartbeat_ttl must be >= 1s")
        if not 0 < self.claim_timeout <= self.heartbeat_ttl / 2:
            problems.append("claim_timeout must be > 0 and <= heartbeat_ttl / 2")
        if not 0.001 <= self.prefetch_max_wait <= self.heartbeat_ttl / 2:
            problems.append("prefetch_max_wait must be >= 1ms and <= heartbeat_ttl / 2")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def queue_of(self, priority: str) -> str:
        """The queue name a priority's jobs live in."""
        return self.queues[priority]


class ProducerConfig(Section):
    scan_dir: str = "./data"
    include_globs: list[str] = Field(default_factory=lambda: ["**/*"])
    exclude_globs: list[str] = Field(default_factory=list)
    default_priority: str = "low"
    high_priority_exts: list[str] = Field(default_factory=lambda: [".pdf", ".docx", ".xlsx"])
    rate_limit_per_sec: float = Field(default=0.0, ge=0)
    burst: int = Field(default=0, ge=0)
    max_pending: int = Field(default=0, ge=0)
    backpressure_poll: Duration = 1.0
    follow_symlinks: bool = False
    dedupe_ttl: Duration = Field(default=7 * 86400.0, ge=1.0)
    watch_interval: Duration = 0.0
    batch_size: int = Field(default=500, ge=1)


class CircuitBreakerConfig(Section):
    failure_threshold: float = Field(default=0.5, gt=0, le=1)
    window: Duration = 60.0
    cooldown_period: Duration = 30.0
    min_samples: int = Field(default=20, ge=1)


class ReaperConfig(Section):
    interval: Duration = 5.0


class LedgerConfig(Section):
    dir: str = ""


class TracingConfig(Section):
    enabled: bool = False
    endpoint: str = ""
    sample_ratio: float = Field(default=1.0, ge=0, le=1)


class ObservabilityConfig(Section):
    metrics_port: int = Field(default=9091, ge=0, le=65535)
    metrics_host: str = "0.0.0.0"
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_format: Literal["auto", "json", "console"] = "auto"
    queue_sample_interval: Duration = 2.0
    ledger: LedgerConfig = Field(default_factory=LedgerConfig)
    tracing: TracingConfig = Field(default_factory=TracingConfig)


class Settings(BaseSettings):
    """The whole configuration. Build it with :func:`load_settings`."""

    model_config = SettingsConfigDict(
        env_prefix="JOBQUEUE_",
        env_nested_delimiter="__",
        extra="forbid",
        validate_assignment=True,
    )

    redis: RedisConfig = Field(default_factory=RedisConfig)
    worker: WorkerConfig = Field(default_factory=WorkerConfig)
    producer: ProducerConfig = Field(default_factory=ProducerConfig)
    circuit_breaker: CircuitBreakerConfig = Field(default_factory=CircuitBreakerConfig)
    reaper: ReaperConfig = Field(default_factory=ReaperConfig)
    observability: ObservabilityConfig = Field(default_factory=ObservabilityConfig)

    @model_validator(mode="after")
    def _producer_priority_known(self) -> Settings:
        if self.producer.default_priority not in self.worker.priorities:
            raise ValueError(
                f"producer.default_priority {self.producer.default_priority!r} "
                f"is not one of worker.priorities {self.worker.priorities}"
            )
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Environment beats the YAML file (passed as init kwargs), which beats defaults."""
        return (env_settings, init_settings)

    def priority_of_queue(self) -> dict[str, str]:
        """Reverse map: queue name -> priority."""
        return {self.worker.queue_of(p): p for p in self.worker.priorities}


def resolve_config_path(explicit: str | None) -> tuple[Path, bool]:
    """Return the path to read and whether the user named it (a named file must exist)."""
    if explicit:
        return Path(explicit), True
    from_env = os.environ.get(CONFIG_ENV_VAR)
    if from_env:
        return Path(from_env), True
    return DEFAULT_CONFIG_PATH, False


def load_settings(path: str | None = None) -> Settings:
    """Read, merge and validate the configuration, or raise ConfigError naming each bad key."""
    config_path, required = resolve_config_path(path)
    raw: Any = {}
    if config_path.exists():
        try:
            raw = yaml.safe_load(config_path.read_text(encoding="utf-8")) or {}
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError([f"{config_path}: cannot read: {exc}"]) from exc
        except yaml.YAMLError as exc:
            first = str(exc).splitlines()[0] if str(exc) else "invalid YAML"
            raise ConfigError([f"{config_path}: invalid YAML: {first}"]) from exc
    elif required:
        raise ConfigError([f"{config_path}: config file not found"])
    if not isinstance(raw, dict):
        raise ConfigError([f"{config_path}: top level must be a mapping of sections"])
    try:
        return Settings(**raw)
    except ValidationError as exc:
        raise ConfigError(describe_validation_error(exc)) from exc


def describe_validation_error(exc: ValidationError) -> list[str]:
    """One line per problem, naming the dotted key."""
    lines = []
    for error in exc.errors(include_url=False):
        key = ".".join(str(part) for part in error["loc"]) or "config"
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] == "extra_forbidden":
            message = "unknown key"
        lines.append(f"{key}: {message}")
    return lines


def redact_url(url: str) -> str:
    """Drop the password (and user) from a URL so it can be printed or logged."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparsable url>"
    if parts.password is None and parts.username is None:
        return url
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, f"***@{host}", parts.path, parts.query, parts.fragment))


def redacted_dump(settings: Settings) -> dict[str, Any]:
    """The effective configuration as plain data with every secret replaced."""
    data = settings.model_dump(mode="json")
    redis = data["redis"]
    redis["url"] = redact_url(redis["url"])
    for holder in (redis, redis["sentinel"]):
        if holder.get("password"):
            holder["password"] = "***"
    return data
