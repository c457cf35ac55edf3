"""What every ``jobqueue`` command shares: the state the root parsed, the error mapping
(JobQueueError -> one line on stderr and its exit code) and the common options."""

from __future__ import annotations

import enum
import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, ParamSpec, Protocol, TypeVar

import typer

from jobqueue.admin import render
from jobqueue.config import Settings, load_settings, parse_duration
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
    server = "server"
    tui = "tui"


@dataclass
class State:
    """What the root callback parsed, handed to sub-commands through ``ctx.obj``."""

    config_path: str | None = None
    as_json: bool = False

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


ConfigOption = Annotated[
    str | None,
    typer.Option(
        "--config",
        "-c",
        metavar="PATH",
        help="YAML config file. Default: $JOBQUEUE_CONFIG, else config/config.yaml.",
    ),
]
JsonOption = Annotated[
    bool, typer.Option("--json", help="Print one JSON document on stdout instead.")
]
YesOption = Annotated[bool, typer.Option("--yes", help="Confirm a command that changes data.")]
DryRunOption = Annotated[
    bool, typer.Option("--dry-run", help="Count what would change; change nothing.")
]
AdminQueueOption = Annotated[
    str,
    typer.Option(
        "--queue",
        metavar="QUEUE",
        help="A priority (high, low, ...), or completed, dlq (dead_letter), scheduled.",
    ),
]
PriorityFilter = Annotated[
    str | None,
    typer.Option("--queue", metavar="PRIORITY", help="Only this priority's queue."),
]
RefreshOption = Annotated[
    str, typer.Option("--refresh", metavar="DURATION", help="How often to sample: 1s, 500ms.")
]
CountOption = Annotated[int, typer.Option("--n", min=1, metavar="N", help="How many entries.")]


def state(ctx: typer.Context) -> State:
    obj = ctx.find_root().obj
    return obj if isinstance(obj, State) else State()


def wants_json(ctx: typer.Context, flag: bool) -> bool:
    """``--json`` given to the command, or to ``jobqueue`` before it."""
    return flag or state(ctx).as_json


class Report(Protocol):
    """A command's result that has a JSON document and a one-line human form."""

    def as_json(self) -> dict[str, Any]: ...

    def line(self) -> str: ...


def show_report(ctx: typer.Context, as_json: bool, report: Report) -> None:
    render.show(wants_json(ctx, as_json), report.as_json, lambda: render.print_line(report.line()))


def duration(flag: str, value: str) -> float:
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise UsageError(f"{flag}: {exc}") from None


def screen_interval(ctx: typer.Context, command: str, refresh: str) -> float:
    """A screen's ``--refresh`` (a positive duration); a screen prints no JSON document."""
    if state(ctx).as_json:
        raise UsageError(f"{command} is a screen and has no --json: use admin stats --json")
    interval = duration("--refresh", refresh)
    if interval <= 0:
        raise UsageError("--refresh must be > 0")
    return interval
