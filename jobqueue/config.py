"""Configuration: one YAML file, environment overrides, every key defaulted and validated.

Precedence, highest first: environment variables ``JOBQUEUE_<SECTION>__<KEY>`` (nested keys
joined by ``__``, for example ``JOBQUEUE_REDIS__URL`` or ``JOBQUEUE_WORKER__BACKOFF__BASE``),
then the YAML file, then the defaults below. Unknown keys are errors so that a typo is never
silently ignored, in the file or in the environment (``envcheck``); so is a setting that would
have no effect. Durations take Go's forms (``500ms``, ``1m30s``, ``1.5h``), ``7d`` or seconds.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import parse_qs, urlsplit, urlunsplit

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
)

from jobqueue.durations import format_duration as format_duration  # noqa: PLC0414 - re-export
from jobqueue.durations import parse_duration as parse_duration  # noqa: PLC0414 - re-export
from jobqueue.envcheck import check_environment
from jobqueue.errors import ConfigError

DEFAULT_CONFIG_PATH = Path("config/config.yaml")
CONFIG_ENV_VAR = "JOBQUEUE_CONFIG"

NAME_PATTERN = r"^[A-Za-z0-9_.\-]+$"  # names become part of Redis keys and SCAN patterns
REDIS_URL_FORMS = "redis://host:6379/0, rediss://host:6380/0, unix:///path/redis.sock, embedded"
# Each role's default metrics port, so that a producer, a worker and a reaper can share a host.
ROLE_METRICS_PORTS = {"worker": 9091, "all": 9091, "producer": 9092, "reaper": 9093}


Duration = Annotated[
    float, BeforeValidator(parse_duration), PlainSerializer(format_duration, return_type=str)
]


RATE_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0}


def parse_rate(value: object) -> float:
    """Jobs per second from ``50/s``, ``600/m``, ``1000/h`` or a plain number (per second)."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        rate = float(value)
    elif isinstance(value, str):
        count, _, unit = value.strip().partition("/")
        if unit.strip() not in RATE_UNITS:
            raise ValueError(f"{value!r}: write a rate as N/s, N/m or N/h, e.g. 50/s")
        try:
            rate = float(count) / RATE_UNITS[unit.strip()]
        except ValueError:
            raise ValueError(f"{value!r}: write a rate as N/s, N/m or N/h, e.g. 50/s") from None
    else:
        raise ValueError(f"{value!r}: write a rate as N/s, N/m or N/h, e.g. 50/s")
    if rate <= 0:
        raise ValueError(f"{value!r}: a rate must be > 0")
    return rate


def format_rate(rate: float) -> str:
    return f"{rate:g}/s"


Rate = Annotated[float, BeforeValidator(parse_rate), PlainSerializer(format_rate, return_type=str)]


def url_db(url: str) -> int | None:
    """The database a redis, rediss or unix URL names (``/2`` or ``?db=2``), or None."""
    parts = urlsplit(url)
    from_query = parse_qs(parts.query).get("db")
    if from_query:
        return int(from_query[0])
    path = parts.path.strip("/") if parts.scheme in ("redis", "rediss") else ""
    return int(path) if path else None


def check_redis_url(url: str) -> str:
    """Refuse at load time a URL that every command would otherwise die on at connect."""
    if url == "embedded" or url.startswith("embedded://"):
        return url
    shown = redact_url(url)
    try:
        parts = urlsplit(url)
        _ = parts.port  # raises on a port that is not a number
    except ValueError as exc:
        raise ValueError(f"cannot parse {shown!r} ({exc}): expected {REDIS_URL_FORMS}") from None
    if parts.scheme not in ("redis", "rediss", "unix"):
        hint = "" if "://" in url else f" (for host:port write redis://{shown})"
        raise ValueError(f"{shown!r} is not a Redis URL{hint}: expected {REDIS_URL_FORMS}")
    if parts.scheme == "unix" and not parts.path:
        raise ValueError(f"{shown!r} names no socket: expected unix:///path/redis.sock")
    if parts.scheme != "unix" and not parts.hostname:
        raise ValueError(f"{shown!r} names no host: expected redis://host:6379/0")
    try:
        url_db(url)
    except ValueError:
        raise ValueError(
            f"{shown!r}: the database must be a number, as in redis://host/0"
        ) from None
    return url


def check_host_port(addr: str) -> str:
    """``host:port`` as Go's redis clients take it (no scheme, numeric port)."""
    host, sep, port = addr.rpartition(":")
    if addr and not (sep and host and "/" not in addr and port.isdigit()):
        raise ValueError(f"expected host:port such as 127.0.0.1:6379, got {addr!r}")
    return addr


RedisURL = Annotated[str, AfterValidator(check_redis_url)]
HostPort = Annotated[str, AfterValidator(check_host_port)]


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
    startup_nodes: list[HostPort] = Field(default_factory=list)


class SentinelConfig(Section):
    master_name: str = ""
    addrs: list[HostPort] = Field(default_factory=list)
    username: str = ""
    password: str = ""


class RedisConfig(Section):
    url: RedisURL = "redis://127.0.0.1:6379"
    addr: HostPort = ""
    username: str = ""
    password: str = ""
    password_file: str = ""
    db: int = Field(default=0, ge=0)
    namespace: str = Field(default="jobqueue", pattern=NAME_PATTERN)
    pool_size_multiplier: int = Field(default=10, ge=1)
    dial_timeout: Duration = 5.0
    read_timeout: Duration = 3.0
    max_retries: int = Field(default=3, ge=0)
    wait_replicas: int = Field(default=0, ge=0)
    wait_timeout: Duration = 1.0
    tls: TLSConfig = Field(default_factory=TLSConfig)
    cluster: ClusterConfig = Field(default_factory=ClusterConfig)
    sentinel: SentinelConfig = Field(default_factory=SentinelConfig)

    @model_validator(mode="before")
    @classmethod
    def _no_setting_without_effect(cls, data: Any) -> Any:
        """Refuse what would be silently ignored; take ``db`` from the URL when it names one
        (so that ``config show`` prints the database actually used)."""
        if not isinstance(data, Mapping):
            return data
        if "write_timeout" in data:
            raise ValueError(
                "write_timeout is not supported: redis-py has one socket timeout for reads "
                "and writes; remove it and set read_timeout"
            )
        if data.get("url") and data.get("addr"):
            raise ValueError("set url or addr, not both (addr would win and url be ignored)")
        try:
            named = url_db(str(data.get("url", "")))
        except ValueError:
            return data  # the url's own validator explains
        if named is not None and "db" not in data:
            return {**data, "db": named}
        if named is not None and str(data["db"]) != str(named):
            raise ValueError(f"db {data['db']} contradicts the database in url ({named}): set one")
        return data

    @model_validator(mode="after")
    def _cluster_rules(self) -> RedisConfig:
        if self.cluster.enabled and self.db:
            raise ValueError("db must be 0 with cluster.enabled (a Redis Cluster has only db 0)")
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
    # by priority: the most jobs per second the whole fleet starts from that queue
    rate_limits: dict[str, Rate] = Field(default_factory=dict)
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
    # by job kind ("default": jobs without one; else they go to ``handler``)
    handlers: dict[str, HandlerConfig] = Field(default_factory=dict)

    @field_validator("handlers")
    @classmethod
    def _kinds_are_names(cls, value: dict[str, HandlerConfig]) -> dict[str, HandlerConfig]:
        for kind in value:
            if not re.match(NAME_PATTERN, kind):
                raise ValueError(f"kind {kind!r} may use only letters, digits, '_', '.', '-'")
        return value

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

    @model_validator(mode="after")
    def _rate_limits_name_priorities(self) -> WorkerConfig:
        unknown = sorted(set(self.rate_limits) - set(self.priorities))
        if unknown:
            raise ValueError(
                f"rate_limits: no priority {', '.join(unknown)} "
                f"(worker.priorities has {', '.join(self.priorities)})"
            )
        return self

    def queue_of(self, priority: str) -> str:
        """The queue name a priority's jobs live in."""
        return self.queues[priority]

    def rates(self) -> dict[str, tuple[float, int]]:
        """Queue name -> (rate limit in jobs/s, burst). The burst is a tenth of a second's
        jobs (at least 1): claims take tokens as they come, so starts stay smooth."""
        return {
            self.queue_of(p): (rate, max(1, math.ceil(rate / 10)))
            for p, rate in self.rate_limits.items()
        }


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
    # Unless set, each role takes its own (ROLE_METRICS_PORTS, through Settings.for_role).
    metrics_port: int = Field(default=9091, ge=0, le=65535)
    metrics_host: str = "0.0.0.0"
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_format: Literal["auto", "json", "console"] = "auto"
    queue_sample_interval: Duration = 2.0
    ledger: LedgerConfig = Field(default_factory=LedgerConfig)
    tracing: TracingConfig = Field(default_factory=TracingConfig)


# -- server (jobqueue serve: the HTTP API and web dashboard, jobqueue/server/) --------------

ServerRole = Literal["read", "enqueue", "admin"]


class TokenConfig(Section):
    """A bearer token of the HTTP API: its ``name`` goes in the logs, never its value."""

    name: str = Field(pattern=NAME_PATTERN)
    role: ServerRole
    token: SecretStr = Field(min_length=16)


ORIGIN = re.compile(r"https?://([a-z0-9-]+(\.[a-z0-9-]+)*|\[[0-9a-f:.]+\])(:(\d{1,5}))?")


def _is_origin(text: str) -> bool:
    """``scheme://host[:port]`` as a browser sends it: lower case, punycode, no user, path,
    query or wildcard (a CORS origin is compared whole)."""
    found = ORIGIN.fullmatch(text)
    return found is not None and (found.group(4) is None or 0 < int(found.group(4)) < 65536)


class ServerConfig(Section):
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    tokens: list[TokenConfig] = Field(default_factory=list)
    token_file: str = ""  # lines "name role token"; read when the server starts
    max_body_bytes: int = Field(default=4 << 20, ge=1024)
    max_batch: int = Field(default=10000, ge=1)
    cors_origins: list[str] = Field(default_factory=list)
    events_interval: Duration = 1.0
    max_event_clients: int = Field(default=1000, ge=1)
    processes: int = Field(default=1, ge=1, le=64)  # serving processes on one port
    watchdog_timeout: Duration = 30.0  # processes > 1: a process silent this long is replaced

    @field_validator("events_interval")
    @classmethod
    def _tick_at_least_50ms(cls, value: float) -> float:
        if value < 0.05:
            raise ValueError("must be >= 50ms")
        return value

    @field_validator("cors_origins")
    @classmethod
    def _origins(cls, value: list[str]) -> list[str]:
        for origin in value:  # a browser sends scheme://host[:port], and matches it exactly
            if origin != "*" and not _is_origin(origin):
                raise ValueError(
                    f"{origin!r} is not an origin: write scheme://host[:port] with no path, "
                    "such as https://ops.example.com, or *"
                )
        return value

    @field_validator("watchdog_timeout")
    @classmethod
    def _watchdog_off_or_past_a_beat(cls, value: float) -> float:
        if 0 < value < 2:  # a process beats once a second: less would kill healthy ones
            raise ValueError("must be 0 (off) or >= 2s")
        return value

    @field_validator("tokens")
    @classmethod
    def _unique_names(cls, value: list[TokenConfig]) -> list[TokenConfig]:
        names = [token.name for token in value]
        if len(set(names)) != len(names):
            raise ValueError("token names must be unique (they name the caller in the logs)")
        return value


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
    server: ServerConfig = Field(default_factory=ServerConfig)

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

    def for_role(self, role: str) -> Settings:
        """These settings as ``role`` runs them: its own default metrics port unless one was
        configured, so that a producer, a worker and a reaper can run on one host."""
        observability = self.observability
        if "metrics_port" in observability.model_fields_set or role not in ROLE_METRICS_PORTS:
            return self
        port = ROLE_METRICS_PORTS[role]
        return self.model_copy(
            update={"observability": observability.model_copy(update={"metrics_port": port})}
        )

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


def read_yaml(config_path: Path) -> Any:
    """The file's data; a syntax error keeps the line and column it was found at."""
    try:
        return yaml.safe_load(config_path.read_text(encoding="utf-8")) or {}
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([f"{config_path}: cannot read: {exc}"]) from exc
    except yaml.MarkedYAMLError as exc:
        raise ConfigError([f"{config_path}:{describe_yaml_error(exc)}"]) from exc
    except yaml.YAMLError as exc:
        raise ConfigError([f"{config_path}: invalid YAML: {exc}"]) from exc


def _at(mark: Any) -> str:
    return f"{mark.line + 1}:{mark.column + 1}"


def describe_yaml_error(exc: yaml.MarkedYAMLError) -> str:
    """``LINE:COLUMN: invalid YAML: problem (while parsing X that starts at LINE:COLUMN)``."""
    mark = exc.problem_mark or exc.context_mark
    text = f"{_at(mark)}: " if mark else " "
    text += f"invalid YAML: {exc.problem or 'syntax error'}"
    if exc.context and exc.context_mark and exc.context_mark is not mark:
        text += f" ({exc.context} that starts at {_at(exc.context_mark)})"
    return text


def load_settings(path: str | None = None, environ: Mapping[str, str] | None = None) -> Settings:
    """Read, merge and validate the configuration, or raise ConfigError naming each bad key
    (or environment variable)."""
    config_path, required = resolve_config_path(path)
    raw: Any = {}
    if config_path.exists():
        raw = read_yaml(config_path)
    elif required:
        raise ConfigError([f"{config_path}: config file not found"])
    if not isinstance(raw, dict):
        raise ConfigError([f"{config_path}: top level must be a mapping of sections"])
    problems = check_environment(Settings, os.environ if environ is None else environ)
    if problems:
        raise ConfigError(problems)
    try:
        return Settings(**raw)
    except ValidationError as exc:
        raise ConfigError(describe_validation_error(exc)) from exc
    except SettingsError as exc:  # a form check_environment does not foresee: still one line
        raise ConfigError([f"environment: {exc}"]) from exc


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
    host = parts.netloc.rpartition("@")[2]  # as written, even with a port that does not parse
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
