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
from jobqueue.config import Settings, load_settings, redacted_dump
from jobqueue.errors import ConfigError, JobQueueError, UsageError
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
        _run_go_style_admin(ctx, admin_cmd, queue=queue, n=n, yes=yes, dev=dev, as_json=as_json)
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
    if as_json:
        render.print_json(data)
    else:
        typer.echo(yaml.safe_dump(data, sort_keys=False), nl=False)


@admin_app.command("stats")
@reported
def admin_stats(
    ctx: typer.Context, config: ConfigOption = None, as_json: JsonOption = False
) -> None:
    """Per-queue pending, scheduled, processing, completed, dead-letter; live workers."""
    from jobqueue.admin import commands  # noqa: PLC0415

    stats = commands.stats(_state(ctx).settings(config))
    if as_json:
        render.print_json(stats.as_json())
    else:
        render.render_stats(stats)


def _run_go_style_admin(
    ctx: typer.Context,
    admin_cmd: str | None,
    *,
    queue: str | None,
    n: int,
    yes: bool,
    dev: bool,
    as_json: bool,
) -> None:
    """``--role=admin --admin-cmd=CMD``: the Go original's spelling of ``admin CMD``."""
    commands: dict[str, Callable[[], None]] = {
        "stats": lambda: admin_stats(ctx, None, as_json),
    }
    if admin_cmd not in commands:
        known = ", ".join(sorted(commands))
        raise UsageError(f"--role=admin needs --admin-cmd, one of: {known}")
    commands[admin_cmd]()


def main() -> None:
    """Console-script entry point."""
    app()
