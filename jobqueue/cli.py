"""The ``jobqueue`` command: parse, load settings, configure logging, call a role or an admin
command, and map the result to an exit code (0 ok, 2 usage/config, 1 operational)."""

from __future__ import annotations

import enum
import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, ParamSpec, TypeVar

import typer
import yaml

from jobqueue import __version__
from jobqueue.admin import render
from jobqueue.config import Settings, load_settings, parse_duration, redacted_dump
from jobqueue.errors import ConfigError, JobQueueError, OperationalError, UsageError
from jobqueue.observe.logs import configure_logging

P = ParamSpec("P")
R = TypeVar("R")


class Role(enum.StrEnum):
    producer = "producer"
    worker = "worker"
    reaper = "reaper"
    all = "all"
    admin = "admin"


@dataclass
class State:
    """What the root callback parsed, handed to sub-commands through ``ctx.obj``."""

    config_path: str | None = None

    def settings(self, override: str | None = None) -> Settings:
        settings = load_settings(override or self.config_path)
        configure_logging(settings.observability.log_level, settings.observability.log_format)
        return settings


def reported(fn: Callable[P, R]) -> Callable[P, R]:
    """Turn JobQueueError into one line on stderr and its exit code; no tracebacks."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except ConfigError as exc:
            for problem in exc.problems:
                render.print_error(f"invalid config: {problem}")
            raise typer.Exit(exc.exit_code) from None
        except JobQueueError as exc:
            render.print_error(str(exc))
            raise typer.Exit(exc.exit_code) from None

    return wrapper


app = typer.Typer(add_completion=False, help=__doc__, rich_markup_mode=None)
admin_app = typer.Typer(help="Inspect and repair the queues.", no_args_is_help=True)
config_app = typer.Typer(help="Validate or print the configuration.", no_args_is_help=True)
app.add_typer(admin_app, name="admin")
app.add_typer(config_app, name="config")

ConfigOption = Annotated[
    str | None,
    typer.Option(
        "--config", "-c", help="YAML config (default config/config.yaml or $JOBQUEUE_CONFIG)."
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="One JSON document on stdout.")]


def _state(ctx: typer.Context) -> State:
    obj = ctx.find_root().obj
    return obj if isinstance(obj, State) else State()


@app.callback(invoke_without_command=True)
@reported
def root(
    ctx: typer.Context,
    role: Annotated[Role | None, typer.Option("--role", help="Which role to run.")] = None,
    config: ConfigOption = None,
    admin_cmd: Annotated[str | None, typer.Option("--admin-cmd", help="With --role=admin.")] = None,
    queue: Annotated[str | None, typer.Option("--queue")] = None,
    n: Annotated[int, typer.Option("--n", min=1)] = 10,
    yes: Annotated[bool, typer.Option("--yes")] = False,
    dev: Annotated[bool, typer.Option("--dev")] = False,
    all_: Annotated[bool, typer.Option("--all", help="requeue-dlq: every dead job.")] = False,
    as_json: JsonOption = False,
    version: Annotated[bool, typer.Option("--version", help="Print the version.")] = False,
) -> None:
    """Run a role (``--role``) or a sub-command (``admin``, ``config``)."""
    ctx.obj = State(config_path=config)
    if version:
        typer.echo(f"jobqueue {__version__}")
        raise typer.Exit(0)
    if ctx.invoked_subcommand:
        return
    if role is None:
        typer.echo(ctx.get_help())
        raise typer.Exit(2)
    if role is Role.admin:
        _run_go_style_admin(
            ctx, admin_cmd, queue=queue, n=n, yes=yes, dev=dev, as_json=as_json, all_=all_
        )
        return
    if admin_cmd:
        raise UsageError("--admin-cmd goes with --role=admin")
    from jobqueue.roles import run_role  # noqa: PLC0415 - keeps `config`/`admin` startup lean

    raise typer.Exit(run_role(role.value, ctx.obj.settings()))


@config_app.command("check")
@reported
def config_check(ctx: typer.Context, config: ConfigOption = None) -> None:
    """Validate the configuration: exit 0 when valid, 2 with one line per problem."""
    _state(ctx).settings(config)
    typer.echo("config ok")


@config_app.command("show")
@reported
def config_show(
    ctx: typer.Context, config: ConfigOption = None, as_json: JsonOption = False
) -> None:
    """Print the effective configuration (file + environment + defaults), secrets redacted."""
    data: Any = redacted_dump(_state(ctx).settings(config))
    render.show(
        as_json, lambda: data, lambda: typer.echo(yaml.safe_dump(data, sort_keys=False), nl=False)
    )


@admin_app.command("stats")
@reported
def admin_stats(
    ctx: typer.Context, config: ConfigOption = None, as_json: JsonOption = False
) -> None:
    """Per-queue pending, scheduled, processing, completed, dead-letter; live workers."""
    from jobqueue.admin import commands  # noqa: PLC0415

    stats = commands.stats(_state(ctx).settings(config))
    render.show(as_json, stats.as_json, lambda: render.render_stats(stats))


YesOption = Annotated[bool, typer.Option("--yes", help="Confirm a command that changes data.")]
AdminQueueOption = Annotated[
    str, typer.Option("--queue", help="A priority, or completed, dead_letter|dlq, scheduled.")
]
CountOption = Annotated[int, typer.Option("--n", min=1, help="How many entries.")]


def _duration(flag: str, value: str) -> float:
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise UsageError(f"{flag}: {exc}") from None


@admin_app.command("peek")
@reported
def admin_peek(
    ctx: typer.Context,
    queue: AdminQueueOption,
    n: CountOption = 10,
    config: ConfigOption = None,
    as_json: JsonOption = False,
) -> None:
    """The next N jobs of a queue; whole payloads with --json, truncated in the table."""
    from jobqueue.admin import commands  # noqa: PLC0415

    result = commands.peek(_state(ctx).settings(config), queue, n)
    render.show(as_json, result.as_json, lambda: render.render_peek(result))


@admin_app.command("purge-dlq")
@reported
def admin_purge_dlq(
    ctx: typer.Context, yes: YesOption = False, config: ConfigOption = None
) -> None:
    """Delete every dead-letter job (needs --yes)."""
    from jobqueue.admin import commands  # noqa: PLC0415

    purged = commands.purge_dlq(_state(ctx).settings(config), yes)
    render.print_line(f"purged {purged} dead-letter jobs")


@admin_app.command("purge-all")
@reported
def admin_purge_all(
    ctx: typer.Context,
    dev: Annotated[bool, typer.Option("--dev", help="Acknowledge: development only.")] = False,
    yes: YesOption = False,
    config: ConfigOption = None,
) -> None:
    """Delete every key of this namespace, found by SCAN (needs --dev and --yes)."""
    from jobqueue.admin import commands  # noqa: PLC0415

    settings = _state(ctx).settings(config)
    deleted = commands.purge_all(settings, dev, yes)
    render.print_line(f"deleted {deleted} keys of namespace {settings.redis.namespace!r}")


@admin_app.command("requeue-dlq")
@reported
def admin_requeue_dlq(
    ctx: typer.Context,
    n: Annotated[int | None, typer.Option("--n", help="How many (default 10).")] = None,
    all_: Annotated[bool, typer.Option("--all", help="Every dead job.")] = False,
    queue: Annotated[str | None, typer.Option("--queue", help="Only this priority.")] = None,
    yes: YesOption = False,
    config: ConfigOption = None,
    as_json: JsonOption = False,
) -> None:
    """Send dead jobs back to their queue, oldest first, retries reset (needs --yes)."""
    from jobqueue.admin import commands  # noqa: PLC0415

    report = commands.requeue_dlq(_state(ctx).settings(config), n, all_, queue, yes)
    render.show(as_json, report.as_json, lambda: render.print_line(render.requeue_line(report)))


@admin_app.command("stats-keys")
@reported
def admin_stats_keys(
    ctx: typer.Context, config: ConfigOption = None, as_json: JsonOption = False
) -> None:
    """SCAN census of this namespace: keys by kind and type, memory sampled (never KEYS)."""
    from jobqueue.admin import commands  # noqa: PLC0415

    census = commands.stats_keys(_state(ctx).settings(config))
    render.show(as_json, lambda: census, lambda: render.render_census(census))


@admin_app.command("workers")
@reported
def admin_workers(
    ctx: typer.Context, config: ConfigOption = None, as_json: JsonOption = False
) -> None:
    """Registered workers: id, host, pid, started, current jobs, heartbeat age, breaker."""
    from jobqueue.admin import commands  # noqa: PLC0415

    rows = commands.workers(_state(ctx).settings(config))
    render.show(
        as_json,
        lambda: {"workers": [row.as_json() for row in rows]},
        lambda: render.render_workers(rows),
    )


@admin_app.command("bench")
@reported
def admin_bench(
    ctx: typer.Context,
    count: Annotated[int, typer.Option("--count", min=1, help="Jobs to enqueue.")] = 1000,
    rate: Annotated[float, typer.Option("--rate", min=0, help="Jobs/s; 0 = unpaced.")] = 0.0,
    priority: Annotated[str | None, typer.Option("--priority")] = None,
    payload_size: Annotated[int, typer.Option("--payload-size", min=0)] = 0,
    timeout: Annotated[str, typer.Option("--timeout", help="e.g. 60s")] = "60s",
    config: ConfigOption = None,
    as_json: JsonOption = False,
) -> None:
    """Enqueue synthetic jobs, wait for them; report throughput and latency percentiles."""
    from jobqueue.admin.bench import BenchOptions, run_bench  # noqa: PLC0415

    options = BenchOptions(count, rate, priority, payload_size, _duration("--timeout", timeout))
    report = run_bench(_state(ctx).settings(config), options)
    render.show(as_json, report.as_json, lambda: render.render_bench(report))
    if report.live_workers == 0:
        render.print_note("no live worker was registered when the bench started")
    if report.timed_out:
        raise OperationalError(
            f"bench timed out: {report.completed} of {report.count} jobs completed"
        )


@admin_app.command("top")
@reported
def admin_top(
    ctx: typer.Context,
    refresh: Annotated[str, typer.Option("--refresh", help="e.g. 1s, 500ms")] = "1s",
    once: Annotated[bool, typer.Option("--once", help="Print one frame and exit.")] = False,
    config: ConfigOption = None,
) -> None:
    """Live dashboard: depths, throughput, failures, DLQ, workers, breakers (q quits)."""
    from jobqueue.admin import top  # noqa: PLC0415

    interval = _duration("--refresh", refresh)
    if interval <= 0:
        raise UsageError("--refresh must be > 0")
    top.run(_state(ctx).settings(config), interval, once)


@admin_app.command("enqueue")
@reported
def admin_enqueue(
    ctx: typer.Context,
    paths: Annotated[list[str], typer.Argument(help="Files, and folders to walk.")],
    priority: Annotated[
        str | None, typer.Option("--priority", help="Default: by extension.")
    ] = None,
    delay: Annotated[str, typer.Option("--delay", help="e.g. 30s; 0s = now.")] = "0s",
    config: ConfigOption = None,
) -> None:
    """Enqueue chosen files (folders walked with the producer's globs), even unchanged ones."""
    from jobqueue.admin import commands  # noqa: PLC0415
    from jobqueue.roles.producer import check_enqueue_request, enqueue_paths  # noqa: PLC0415
    from jobqueue.roles.progress import summary_line  # noqa: PLC0415

    seconds = _duration("--delay", delay)
    settings = _state(ctx).settings(config)
    check_enqueue_request(settings, paths, priority, seconds)
    with commands.session(settings) as engine:
        summary = enqueue_paths(settings, engine, paths, priority, seconds)
    render.print_line(summary_line("enqueue", summary, summary.elapsed))
    if summary.skipped_error:
        raise OperationalError(f"{summary.skipped_error} of the files could not be enqueued")


def _required(value: str | None, cmd: str, flag: str) -> str:
    if value is None:
        raise UsageError(f"--admin-cmd={cmd} needs {flag}")
    return value


def _run_go_style_admin(
    ctx: typer.Context,
    admin_cmd: str | None,
    *,
    queue: str | None,
    n: int,
    yes: bool,
    dev: bool,
    as_json: bool,
    all_: bool = False,
) -> None:
    """``--role=admin --admin-cmd=CMD``: the Go original's spelling of ``admin CMD``."""
    commands: dict[str, Callable[[], None]] = {
        "stats": lambda: admin_stats(ctx, None, as_json),
        "peek": lambda: admin_peek(ctx, _required(queue, "peek", "--queue"), n, as_json=as_json),
        "purge-dlq": lambda: admin_purge_dlq(ctx, yes=yes),
        "purge-all": lambda: admin_purge_all(ctx, dev=dev, yes=yes),
        "stats-keys": lambda: admin_stats_keys(ctx, as_json=as_json),
        "requeue-dlq": lambda: admin_requeue_dlq(
            ctx, None if all_ else n, all_, queue, yes, as_json=as_json
        ),
        "workers": lambda: admin_workers(ctx, as_json=as_json),
        "bench": lambda: admin_bench(ctx, count=n, as_json=as_json),
        "top": lambda: admin_top(ctx),
    }
    if admin_cmd not in commands:
        known = ", ".join(sorted(commands))
        raise UsageError(f"--role=admin needs --admin-cmd, one of: {known}")
    commands[admin_cmd]()


def main() -> None:
    """Console-script entry point."""
    app()
