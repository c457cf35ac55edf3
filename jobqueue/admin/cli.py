"""``jobqueue admin ...``: the admin sub-app, and the Go original's spelling of it,
``jobqueue --role=admin --admin-cmd=CMD``. Each command is a thin face over
``admin.commands`` (reading), ``admin.repairs`` (changing) or ``admin.bench``/``top``."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated

import typer

from jobqueue.admin import render
from jobqueue.clibase import (
    AdminQueueOption,
    ConfigOption,
    CountOption,
    DryRunOption,
    JsonOption,
    PriorityFilter,
    RefreshOption,
    YesOption,
    duration,
    reported,
    screen_interval,
    show_report,
    state,
    wants_json,
)
from jobqueue.errors import OperationalError, UsageError

if TYPE_CHECKING:
    from jobqueue.admin.repairs import JobAction

admin_app = typer.Typer(
    help="Inspect and repair the queues.", no_args_is_help=True, rich_markup_mode=None
)


# -- admin: reading -------------------------------------------------------------------------


@admin_app.command("stats")
@reported
def admin_stats(
    ctx: typer.Context, config: ConfigOption = None, as_json: JsonOption = False
) -> None:
    """Count jobs per queue, and live workers.

    Per queue: pending, scheduled, processing, completed and dead-letter.
    """
    from jobqueue.admin import commands  # noqa: PLC0415

    stats = commands.stats(state(ctx).settings(config))
    render.show(wants_json(ctx, as_json), stats.as_json, lambda: render.render_stats(stats))


@admin_app.command("peek")
@reported
def admin_peek(
    ctx: typer.Context,
    queue: AdminQueueOption,
    n: CountOption = 10,
    config: ConfigOption = None,
    as_json: JsonOption = False,
) -> None:
    """Show the next N jobs of a queue.

    Whole payloads with --json; the table shortens them to fit.

    Example: jobqueue admin peek --queue dlq --n 5
    """
    from jobqueue.admin import commands  # noqa: PLC0415

    result = commands.peek(state(ctx).settings(config), queue, n)
    render.show(wants_json(ctx, as_json), result.as_json, lambda: render.render_peek(result))


@admin_app.command("stats-keys")
@reported
def admin_stats_keys(
    ctx: typer.Context, config: ConfigOption = None, as_json: JsonOption = False
) -> None:
    """Count this namespace's keys by kind and type.

    Found with SCAN (never KEYS); memory is estimated from a sample.
    """
    from jobqueue.admin import commands  # noqa: PLC0415

    census = commands.stats_keys(state(ctx).settings(config))
    render.show(wants_json(ctx, as_json), lambda: census, lambda: render.render_census(census))


@admin_app.command("workers")
@reported
def admin_workers(
    ctx: typer.Context, config: ConfigOption = None, as_json: JsonOption = False
) -> None:
    """List registered workers, live and expired.

    Pid, running and reserved jobs, heartbeat age and breaker state. Expired workers wait for a
    reaper; when none has swept lately, a note says how to recover their jobs.
    """
    from jobqueue.admin import commands  # noqa: PLC0415

    view = commands.workers(state(ctx).settings(config))
    render.show(wants_json(ctx, as_json), view.as_json, lambda: render.render_workers(view.rows))
    hint = view.hint()
    if hint:
        render.print_note(hint)


# -- admin: changing ------------------------------------------------------------------------


@admin_app.command("purge-dlq")
@reported
def admin_purge_dlq(
    ctx: typer.Context,
    yes: YesOption = False,
    queue: PriorityFilter = None,
    dry_run: DryRunOption = False,
    n: Annotated[
        int | None,
        typer.Option("--n", metavar="N", help="At most N, oldest first (default: all)."),
    ] = None,
    config: ConfigOption = None,
    as_json: JsonOption = False,
) -> None:
    """Delete dead-letter jobs (needs --yes).

    Of every queue, or of the one --queue names; --dry-run counts them first, and --n N
    deletes no more than the N a dry run counted, whatever died since.

    Example: jobqueue admin purge-dlq --queue low --dry-run
    """
    from jobqueue.admin import repairs  # noqa: PLC0415

    report = repairs.purge_dlq(state(ctx).settings(config), yes, queue, dry_run, n)
    show_report(ctx, as_json, report)


@admin_app.command("purge-all")
@reported
def admin_purge_all(
    ctx: typer.Context,
    dev: Annotated[bool, typer.Option("--dev", help="Acknowledge: development only.")] = False,
    yes: YesOption = False,
    dry_run: DryRunOption = False,
    config: ConfigOption = None,
    as_json: JsonOption = False,
) -> None:
    """Delete every key of this namespace (development only).

    Needs --dev and --yes; --dry-run counts the keys first.
    """
    from jobqueue.admin import repairs  # noqa: PLC0415

    report = repairs.purge_all(state(ctx).settings(config), dev, yes, dry_run)
    show_report(ctx, as_json, report)


@admin_app.command("requeue-dlq")
@reported
def admin_requeue_dlq(
    ctx: typer.Context,
    n: Annotated[
        int | None, typer.Option("--n", metavar="N", help="How many jobs (default 10).")
    ] = None,
    all_: Annotated[bool, typer.Option("--all", help="Every dead job.")] = False,
    queue: PriorityFilter = None,
    yes: YesOption = False,
    dry_run: DryRunOption = False,
    config: ConfigOption = None,
    as_json: JsonOption = False,
) -> None:
    """Send dead jobs back to their queues (needs --yes).

    Oldest first, retries reset; 10 unless --n N or --all; --dry-run counts first.

    Example: jobqueue admin requeue-dlq --all --queue high --yes
    """
    from jobqueue.admin import repairs  # noqa: PLC0415

    report = repairs.requeue_dlq(state(ctx).settings(config), n, all_, queue, yes, dry_run)
    line = repairs.dry_requeue_line(report) if dry_run else render.requeue_line(report)
    render.show(wants_json(ctx, as_json), report.as_json, lambda: render.print_line(line))
    left = sum(report.remaining.values())
    if n is None and not all_ and left:
        render.print_note(f"{left} dead jobs remain (10 at a time by default): --n N or --all")


@admin_app.command("job")
@reported
def admin_job(
    ctx: typer.Context,
    job_id: Annotated[str, typer.Argument(metavar="ID", help="The job's id.")],
    config: ConfigOption = None,
    as_json: JsonOption = False,
) -> None:
    """What happened to a job: its state, attempts, last error and times.

    States: pending (claimed but not started included), scheduled (with its due time),
    processing (with its worker), completed, dead. A finished job is remembered for
    worker.completed_ttl. Exit 1 when no queue knows the id.
    """
    from jobqueue.admin import commands  # noqa: PLC0415

    record = commands.job(state(ctx).settings(config), job_id)
    render.show(wants_json(ctx, as_json), record.as_json, lambda: render.render_job(record))


@admin_app.command("enqueue")
@reported
def admin_enqueue(
    ctx: typer.Context,
    paths: Annotated[
        list[str] | None,
        typer.Argument(metavar="[PATH...]", help="Files and folders; - reads NDJSON jobs."),
    ] = None,
    priority: Annotated[
        str | None,
        typer.Option("--priority", metavar="PRIORITY", help="Default: by file extension."),
    ] = None,
    delay: Annotated[
        str, typer.Option("--delay", metavar="DURATION", help="e.g. 30s; 0s = now.")
    ] = "0s",
    payload: Annotated[
        str | None,
        typer.Option("--payload", metavar="JSON", help="One job that is not a file."),
    ] = None,
    kind: Annotated[
        str, typer.Option("--kind", metavar="KIND", help="Its handler (worker.handlers).")
    ] = "",
    config: ConfigOption = None,
    as_json: JsonOption = False,
) -> None:
    """Enqueue chosen files and folders now, or jobs that are not files.

    Files go in even when unchanged; folders are walked with the producer's globs. With
    --payload (and --kind) and no PATH, one job carrying that JSON. With PATH -, one job
    per line of standard input, each a JSON object with any of payload, kind, filepath,
    priority, idempotency_key, job_id; every line is checked before any is sent.

    Examples: jobqueue admin enqueue data/report.pdf --priority high --delay 1m;
    jobqueue admin enqueue --kind resize --payload '{"image": 7}';
    jobqueue admin enqueue - < jobs.ndjson
    """
    from jobqueue.admin import commands  # noqa: PLC0415
    from jobqueue.roles.producer import check_enqueue_request, enqueue_paths  # noqa: PLC0415
    from jobqueue.roles.progress import count_fields, summary_line  # noqa: PLC0415

    seconds = duration("--delay", delay)
    settings = state(ctx).settings(config)
    paths = paths or []
    if payload is not None or kind or paths == ["-"]:
        report = commands.enqueue_jobs(settings, paths, payload, kind, priority, seconds)
        render.show(
            wants_json(ctx, as_json),
            lambda: report,
            lambda: render.print_line(
                f"enqueue: {report['enqueued']} enqueued, {report['duplicates']} already known"
            ),
        )
        return
    check_enqueue_request(settings, paths, priority, seconds)
    with commands.session(settings) as engine:
        summary = enqueue_paths(settings, engine, paths, priority, seconds)
    render.show(
        wants_json(ctx, as_json),
        lambda: count_fields(summary, summary.elapsed),
        lambda: render.print_line(summary_line("enqueue", summary, summary.elapsed)),
    )
    if summary.skipped_error:
        raise OperationalError(f"{summary.skipped_error} of the files could not be enqueued")


@admin_app.command("reap")
@reported
def admin_reap(
    ctx: typer.Context, config: ConfigOption = None, as_json: JsonOption = False
) -> None:
    """Run one reaper sweep now.

    Recovers the jobs of workers whose heartbeat expired, as the reaper role does.
    """
    from jobqueue.admin import repairs  # noqa: PLC0415

    report = repairs.reap(state(ctx).settings(config))
    show_report(ctx, as_json, report)


JobIds = Annotated[list[str], typer.Argument(metavar="ID...", help="Job ids.")]


def _act(
    ctx: typer.Context, action: JobAction, ids: list[str], config: str | None, as_json: bool
) -> None:
    from jobqueue.admin import repairs  # noqa: PLC0415

    report = repairs.act_on_jobs(state(ctx).settings(config), action, ids)
    show_report(ctx, as_json, report)


@admin_app.command("requeue-job")
@reported
def admin_requeue_job(
    ctx: typer.Context, ids: JobIds, config: ConfigOption = None, as_json: JsonOption = False
) -> None:
    """Send chosen dead-letter jobs back to their queue, attempts reset."""
    _act(ctx, "requeue", ids, config, as_json)


@admin_app.command("delete-job")
@reported
def admin_delete_job(
    ctx: typer.Context, ids: JobIds, config: ConfigOption = None, as_json: JsonOption = False
) -> None:
    """Delete chosen dead-letter jobs for good."""
    _act(ctx, "delete", ids, config, as_json)


@admin_app.command("run-now")
@reported
def admin_run_now(
    ctx: typer.Context, ids: JobIds, config: ConfigOption = None, as_json: JsonOption = False
) -> None:
    """Run chosen scheduled jobs (retries in backoff, delayed jobs) now: to the queue's head."""
    _act(ctx, "run-now", ids, config, as_json)


# -- admin: load and screens ----------------------------------------------------------------


@admin_app.command("bench")
@reported
def admin_bench(
    ctx: typer.Context,
    count: Annotated[
        int, typer.Option("--count", min=1, metavar="N", help="Jobs to enqueue.")
    ] = 1000,
    rate: Annotated[
        float, typer.Option("--rate", min=0, metavar="PER_SECOND", help="0 = unpaced.")
    ] = 0.0,
    priority: Annotated[
        str | None,
        typer.Option("--priority", metavar="PRIORITY", help="Default: producer.default_priority."),
    ] = None,
    payload_size: Annotated[
        int, typer.Option("--payload-size", min=0, metavar="BYTES", help="Pad each job.")
    ] = 0,
    timeout: Annotated[
        str, typer.Option("--timeout", metavar="DURATION", help="e.g. 60s, 5m.")
    ] = "60s",
    config: ConfigOption = None,
    as_json: JsonOption = False,
) -> None:
    """Measure throughput and latency with synthetic jobs.

    Enqueues them, waits for the workers to finish them and reports. Jobs not yet claimed
    at a timeout or Ctrl-C are taken back out of the queue; dead-lettered jobs fail it.

    Example: jobqueue admin bench --count 1000 --rate 200
    """
    from jobqueue.admin.bench import BenchOptions, run_bench  # noqa: PLC0415

    options = BenchOptions(count, rate, priority, payload_size, duration("--timeout", timeout))
    report = run_bench(state(ctx).settings(config), options)
    render.show(wants_json(ctx, as_json), report.as_json, lambda: render.render_bench(report))
    if report.live_workers == 0:
        render.print_note("no live worker was registered when the bench started")
    problem = report.problem()
    if problem:
        raise OperationalError(problem)


@admin_app.command("top")
@reported
def admin_top(
    ctx: typer.Context,
    refresh: RefreshOption = "1s",
    once: Annotated[bool, typer.Option("--once", help="Print one frame and exit.")] = False,
    config: ConfigOption = None,
) -> None:
    """Live dashboard of queues and workers.

    Depths by state, throughput, failures, workers and breakers, at 80x24 and up. On a
    terminal: j/k scroll the workers, q or Ctrl-C quits; off a terminal (a pipe), one plain
    frame per refresh.
    """
    from jobqueue.admin import top  # noqa: PLC0415

    interval = screen_interval(ctx, "admin top", refresh)
    top.run(state(ctx).settings(config), interval, once)


# -- the Go original's spelling -------------------------------------------------------------


def _required(value: str | None, cmd: str, flag: str) -> str:
    if value is None:
        raise UsageError(f"--admin-cmd={cmd} needs {flag}")
    return value


def run_go_style_admin(
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
        "purge-dlq": lambda: admin_purge_dlq(ctx, yes=yes, queue=queue, as_json=as_json),
        "purge-all": lambda: admin_purge_all(ctx, dev=dev, yes=yes, as_json=as_json),
        "stats-keys": lambda: admin_stats_keys(ctx, as_json=as_json),
        "requeue-dlq": lambda: admin_requeue_dlq(
            ctx, None if all_ else n, all_, queue, yes, as_json=as_json
        ),
        "workers": lambda: admin_workers(ctx, as_json=as_json),
        "reap": lambda: admin_reap(ctx, as_json=as_json),
        "bench": lambda: admin_bench(ctx, count=n, as_json=as_json),
        "top": lambda: admin_top(ctx),
    }
    if admin_cmd not in commands:
        known = ", ".join(sorted(commands))
        raise UsageError(f"--role=admin needs --admin-cmd, one of: {known}")
    commands[admin_cmd]()
