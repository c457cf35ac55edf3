"""The ``jobqueue`` command: parse, load settings, configure logging, call a role or an admin
command, and map the result to an exit code (0 ok, 2 usage/config, 1 operational).

Docstrings of commands are their ``--help`` text, written for the operator; design notes
live in comments. ``--json`` works on every admin and config command, after the command or
before it (``jobqueue --json admin stats``); a role, which prints no document, refuses it.
"""

from __future__ import annotations

import shutil
from typing import Annotated, Any

import typer
import yaml
from typer.core import TyperGroup

from jobqueue import __version__
from jobqueue.admin import render
from jobqueue.admin.cli import admin_app, run_go_style_admin
from jobqueue.clibase import (
    ConfigOption,
    JsonOption,
    RefreshOption,
    Role,
    State,
    reported,
    screen_interval,
    state,
    wants_json,
)
from jobqueue.config import Settings, redacted_dump, resolve_config_path
from jobqueue.errors import ConfigError, UsageError


class RootGroup(TyperGroup):
    """Click's group, pointing a role written as a command (``jobqueue worker``) at
    ``--role=worker``."""

    def resolve_command(self, ctx: Any, args: list[str]) -> Any:
        name = args[0] if args else ""
        if name in Role.__members__ and self.get_command(ctx, name) is None:
            ctx.fail(f"No such command {name!r}. Roles run with --role: jobqueue --role={name}")
        return super().resolve_command(ctx, args)


ROOT_HELP = """Run a role, or an admin or config command, of the jobqueue job queue.

\b
  jobqueue --role=worker              run a role: producer, worker, reaper or all
  jobqueue admin stats                inspect and repair the queues (jobqueue admin -h)
  jobqueue config check               validate the configuration
  jobqueue serve                      the HTTP API and web dashboard (also --role=server)
  jobqueue tui                        interactive terminal UI (the tui extra)

Every role needs a Redis: redis://127.0.0.1:6379 unless redis.url says otherwise.
"""
HELP_OPTIONS = {"help_option_names": ["-h", "--help"]}

app = typer.Typer(
    cls=RootGroup, help=ROOT_HELP, rich_markup_mode=None, context_settings=HELP_OPTIONS
)
config_app = typer.Typer(
    help="Validate or print the configuration.", no_args_is_help=True, rich_markup_mode=None
)
app.add_typer(admin_app, name="admin")
app.add_typer(config_app, name="config")


@app.callback(invoke_without_command=True)
@reported
def root(
    ctx: typer.Context,
    role: Annotated[Role | None, typer.Option("--role", help="Which role to run.")] = None,
    config: ConfigOption = None,
    admin_cmd: Annotated[
        str | None,
        typer.Option(
            "--admin-cmd", metavar="CMD", help="With --role=admin: stats, peek, workers, ..."
        ),
    ] = None,
    queue: Annotated[
        str | None, typer.Option("--queue", metavar="QUEUE", help="With --admin-cmd.")
    ] = None,
    n: Annotated[
        int, typer.Option("--n", min=1, metavar="N", help="With --admin-cmd: how many.")
    ] = 10,
    yes: Annotated[bool, typer.Option("--yes", help="With --admin-cmd: confirm.")] = False,
    dev: Annotated[
        bool, typer.Option("--dev", help="With --admin-cmd=purge-all, or --role=tui.")
    ] = False,
    all_: Annotated[bool, typer.Option("--all", help="With --admin-cmd=requeue-dlq.")] = False,
    as_json: Annotated[
        bool, typer.Option("--json", help="For admin and config commands: one JSON document.")
    ] = False,
    version: Annotated[bool, typer.Option("--version", help="Print the version.")] = False,
) -> None:
    ctx.obj = State(config_path=config, as_json=as_json)
    if version:
        typer.echo(f"jobqueue {__version__}")
        raise typer.Exit(0)
    if ctx.invoked_subcommand:
        return
    if role is None:
        typer.echo(ctx.get_help())
        raise typer.Exit(2)
    if role is Role.admin:
        run_go_style_admin(
            ctx, admin_cmd, queue=queue, n=n, yes=yes, dev=dev, as_json=as_json, all_=all_
        )
        return
    if admin_cmd:
        raise UsageError("--admin-cmd goes with --role=admin")
    if as_json:
        raise UsageError(
            f"--json is for admin and config commands; --role={role.value} prints no document "
            "(its logs are JSON when not on a terminal: observability.log_format)"
        )
    if role is Role.server:
        raise typer.Exit(run_server(ctx.obj.settings()))
    if role is Role.tui:  # the Go original's spelling of `jobqueue tui`
        tui(ctx, dev=dev)
        return
    from jobqueue.roles import run_role  # noqa: PLC0415 - keeps `config`/`admin` startup lean

    raise typer.Exit(run_role(role.value, ctx.obj.settings().for_role(role.value)))


# -- serve ----------------------------------------------------------------------------------

SERVER_EXTRA = ("fastapi", "starlette", "uvicorn", "anyio")


def run_server(settings: Settings) -> int:
    """The HTTP face, or one line naming the extra it needs."""
    try:
        from jobqueue.server.serve import serve  # noqa: PLC0415 - the optional extra
    except ModuleNotFoundError as exc:
        if (exc.name or "").partition(".")[0] not in SERVER_EXTRA:
            raise
        raise UsageError(
            f"jobqueue serve needs the server extra ({exc.name} is missing): "
            "pip install 'jobqueue[server]'"
        ) from None
    return serve(settings)


@app.command("serve")
@reported
def serve_command(ctx: typer.Context, config: ConfigOption = None) -> None:
    """Serve the HTTP API and the live web dashboard (same as --role=server).

    Listens on server.host:server.port (127.0.0.1:8080), on 127.0.0.1 only while no token
    is configured. The API is documented at /api/v1/openapi.json; docs/api.md explains it.

    Example: jobqueue serve --config config/config.yaml
    """
    raise typer.Exit(run_server(state(ctx).settings(config)))


# -- tui ------------------------------------------------------------------------------------


@app.command("tui")
@reported
def tui(
    ctx: typer.Context,
    refresh: RefreshOption = "2s",
    dev: Annotated[
        bool, typer.Option("--dev", help="Allow A (purge every key): development only.")
    ] = False,
    config: ConfigOption = None,
) -> None:
    """Interactive terminal UI: queues, keys, workers, dead-letter and scheduled jobs.

    Peek, bench, charts, filters and repairs (requeue, delete, run now, purge), each
    change behind a confirm that says how much will go. In it, ? lists every key; q quits.
    Needs the tui extra: pip install 'jobqueue[tui]'.

    Example: jobqueue tui --refresh 1s
    """
    from jobqueue.tui import run  # noqa: PLC0415 - the optional extra, only here

    interval = screen_interval(ctx, "tui", refresh)
    run(state(ctx).settings(config), interval, dev)


# -- config ---------------------------------------------------------------------------------


def check_handler(settings: Settings) -> None:
    """What a worker loads at start: each python handler's callable imported, each exec
    handler's program found (on PATH, or at the path given)."""
    from jobqueue.roles.worker.handlers import load_callable  # noqa: PLC0415

    worker = settings.worker
    named = [("worker.handler", worker.handler)]
    named += [(f"worker.handlers.{kind}", cfg) for kind, cfg in worker.handlers.items()]
    for key, handler in named:
        if handler.type == "python":
            load_callable(handler.callable, key)
        elif handler.type == "exec" and shutil.which(handler.command[0]) is None:
            raise ConfigError(
                [
                    f"{key}.command: program {handler.command[0]!r} is not on PATH or "
                    "not executable: install it, or give its full path"
                ]
            )


@config_app.command("check")
@reported
def config_check(
    ctx: typer.Context, config: ConfigOption = None, as_json: JsonOption = False
) -> None:
    """Validate the configuration, environment and handler.

    Exit 0 when valid, 2 with one line per problem. It also imports a python handler's
    callable and looks for an exec handler's program, as a worker would at start.
    """
    shared = state(ctx)
    path = str(resolve_config_path(config or shared.config_path)[0])
    try:
        check_handler(shared.settings(config))
    except ConfigError as exc:
        if wants_json(ctx, as_json):
            render.print_json({"valid": False, "config": path, "problems": exc.problems})
        raise
    render.show(
        wants_json(ctx, as_json),
        lambda: {"valid": True, "config": path, "problems": []},
        lambda: typer.echo("config ok"),
    )


@config_app.command("show")
@reported
def config_show(
    ctx: typer.Context, config: ConfigOption = None, as_json: JsonOption = False
) -> None:
    """Print the effective configuration, secrets redacted.

    What the file, the environment and the defaults add up to.
    """
    data: Any = redacted_dump(state(ctx).settings(config))
    render.show(
        wants_json(ctx, as_json),
        lambda: data,
        lambda: typer.echo(yaml.safe_dump(data, sort_keys=False), nl=False),
    )


def main() -> None:
    """Console-script entry point."""
    app()
