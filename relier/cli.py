"""The ``relier`` command: a thin typer layer over the library.

Every command turns Relier's own errors into one clear line on stderr and exit code 2,
not a traceback.
"""

from __future__ import annotations

import logging
import sys
from typing import Annotated, Any

import typer

from relier import logs
from relier.cli_checks import doctor, health
from relier.cli_common import (
    AppOption,
    JsonOption,
    LogFormatOption,
    LogLevelOption,
    RedisOption,
    fail,
    guarded,
    ping,
    print_json,
    sync_client,
)
from relier.cli_dlq import dlq_cli
from relier.cli_help import use_conventional_help
from relier.errors import RelierError
from relier.protocol.queues import DEFAULT_QUEUES
from relier.store.errors import ClusterUnavailable, StoreError

log = logging.getLogger("relier.worker")
use_conventional_help()

cli = typer.Typer(
    name="relier",
    help="Relier: an asyncio task runtime that speaks Celery's protocol on Redis.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def _print_version(value: bool) -> None:
    if value:
        from importlib.metadata import PackageNotFoundError, version

        try:
            found = version("relier")
        except PackageNotFoundError:  # pragma: no cover - run from a source tree
            found = "unknown"
        typer.echo(f"relier {found} (Python {sys.version.split()[0]})")
        raise typer.Exit()


@cli.callback()
def _root(
    show_version: Annotated[bool, typer.Option(
        "--version", "-V", callback=_print_version, is_eager=True,
        help="Print Relier's version and exit.")] = False,
) -> None:
    """Relier: an asyncio task runtime that speaks Celery's protocol on Redis."""


@cli.command()
def worker(
    app: AppOption = None,
    queues: Annotated[
        str, typer.Option("-Q", "--queues", help="Comma-separated queues to consume.")
    ] = ",".join(DEFAULT_QUEUES),
    concurrency: Annotated[int, typer.Option(
        "-c", "--concurrency", min=1,
        help="Tasks run at once by each worker process (async tasks on its event loop, "
             "sync ones in up to 64 threads).")] = 100,
    processes: Annotated[int | None, typer.Option(
        "-p", "--processes", min=1, show_default=False,
        help="Run this many worker processes under a supervisor that restarts them.")] = None,
    events: Annotated[bool, typer.Option(
        "-E", "--events", help="Publish Celery's task and worker events (for Flower).")] = False,
    metrics_port: Annotated[int | None, typer.Option(
        "--metrics-port", help="Serve Prometheus metrics on this port (env RELIER_METRICS_PORT).",
        show_default=False)] = None,
    no_schedule: Annotated[bool, typer.Option(
        "--no-schedule", help="Never lead the periodic schedules (env RELIER_SCHEDULE=0).")
    ] = False,
    redis_url: RedisOption = None,
    log_level: LogLevelOption = "info",
    log_format: LogFormatOption = "text",
) -> None:
    """Run a worker: take tasks from the queues and run them until SIGTERM."""
    from relier.banner import announce_tasks
    from relier.loader import load_app, resolve_target
    from relier.runtime import loop
    from relier.runtime.supervisor import Supervisor, watch_supervisor
    from relier.runtime.worker import Worker, end_process

    guarded(lambda: logs.configure(log_level, log_format))
    relier_app = guarded(lambda: load_app(app))
    relier_app.configure(redis_url=redis_url, metrics_port=metrics_port,
                         events=True if events else None,
                         schedule=False if no_schedule else None)
    guarded(lambda: relier_app.settings)  # a bad setting is the one line to print
    announce_tasks(relier_app, resolve_target(app))
    names = [q.strip() for q in queues.split(",") if q.strip()]
    if processes is not None:
        # Fail here, not N times in the children.
        sync_client(guarded(lambda: relier_app.settings).redis_url)
        child = [*(["-A", app] if app else []), "-Q", ",".join(names), "-c", str(concurrency),
                 *(["-E"] if events else []), *(["--redis-url", redis_url] if redis_url else []),
                 *(["--no-schedule"] if no_schedule else []),
                 "--log-level", log_level, "--log-format", log_format]
        raise typer.Exit(guarded(Supervisor(relier_app, child, processes,
                                            _child_metrics(relier_app)).run))
    watch_supervisor()
    from relier.observability.telemetry import Telemetry

    runner = guarded(lambda: Worker(relier_app, names, concurrency, telemetry=Telemetry))
    try:
        guarded(lambda: loop.run(runner.run))
    except typer.Exit:
        raise
    except BaseException:
        # Also after a crash: a stuck sync-task thread would otherwise keep the process
        # alive for ever, its slot under --processes never restarted.
        log.exception("worker crashed")
        end_process(runner.exit_code or 1)
        raise
    end_process(runner.exit_code)


def _child_metrics(app: Any) -> Any:
    """The one ``/metrics`` of ``--processes`` children, or None when metrics are off."""
    from relier.observability.supervised import SupervisedMetrics

    settings = app.settings
    return SupervisedMetrics(settings) if settings.metrics_port > 0 else None


@cli.command()
def demo(
    keep_server: Annotated[
        bool, typer.Option(help="Leave the private server running at the end.")
    ] = False,
) -> None:
    """Show Relier at work on a private Valkey server it starts and stops itself."""
    from relier.demo import run_demo

    guarded(lambda: run_demo(keep_server=keep_server))


def main(argv: list[str] | None = None) -> Any:
    """Entry point of the ``relier`` console script."""
    try:
        return cli(args=argv if argv is not None else sys.argv[1:], standalone_mode=True)
    except RelierError as exc:  # one that a command did not catch itself: still one line
        typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
        raise SystemExit(2) from None
    except (StoreError, *ClusterUnavailable) as exc:  # Redis failed mid-command
        typer.secho(f"error: Redis did not answer the command ({type(exc).__name__}: {exc}); "
                    "nothing more was done", fg=typer.colors.RED, err=True)
        raise SystemExit(2) from None


# -- dlq ------------------------------------------------------------------------------

cli.add_typer(dlq_cli, name="dlq")


# -- inspect, top, queues, purge -------------------------------------------------------

inspect_cli = typer.Typer(help="What runs where: queues, workers, running tasks; or one task.",
                          invoke_without_command=True)
cli.add_typer(inspect_cli, name="inspect")


def _inspector(redis_url: str | None) -> Any:
    from relier.observability.inspect import Inspector

    return Inspector(sync_client(redis_url))


@inspect_cli.callback()
def inspect_all(
    ctx: typer.Context,
    json_output: JsonOption = False,
    redis_url: RedisOption = None,
) -> None:
    """Queues, workers, the tasks running now and those resurrected from dead workers."""
    if ctx.invoked_subcommand is not None:
        return
    snapshot = _inspector(redis_url).snapshot()
    if json_output:
        print_json(snapshot)
        return
    from rich.console import Console

    from relier.observability.render import snapshot_view

    console = Console()
    console.print(snapshot_view(snapshot, width=console.width))


@inspect_cli.command("task")
def inspect_task(
    task_id: Annotated[str, typer.Argument(help="The task id (or its start).")],
    json_output: JsonOption = False,
    redis_url: RedisOption = None,
) -> None:
    """Where one task is now, and its history as far as Redis remembers it."""
    from relier.observability.id_prefix import candidates, resolve_prefix
    from relier.observability.whereabouts import TaskLocator

    inspector = _inspector(redis_url)
    locator = TaskLocator(inspector)
    report = locator.report(task_id)
    if report.state == "unknown":  # perhaps the start of an id, as narrow views show them
        try:
            full_id = resolve_prefix(task_id, candidates(inspector, task_id))
        except LookupError as exc:
            if "is the start of" in str(exc):
                fail(str(exc))
        else:
            report = locator.report(full_id)
    if json_output:
        print_json(report)
    else:
        from relier.observability.render import task_report

        task_report(report)
    if report.state == "unknown":
        raise typer.Exit(1)


@cli.command()
def top(
    interval: Annotated[float, typer.Option(min=0.2, help="Seconds between refreshes.")] = 1.0,
    once: Annotated[bool, typer.Option("--once", help="Print one frame and exit.")] = False,
    redis_url: RedisOption = None,
) -> None:
    """`relier inspect`, live: refreshed in place until Ctrl-C."""
    import time

    from rich.console import Console
    from rich.live import Live

    from relier.observability.render import fitted_view

    inspector = _inspector(redis_url)
    title = "relier top"
    console = Console()
    if once:
        console.print(fitted_view(inspector.snapshot(), console, title=title))
        return
    # Live redraws the frame in place (cursor moves, no clear), so nothing flickers; each
    # frame is fitted to the terminal's size as it is now (it may have been resized).
    with Live(fitted_view(inspector.snapshot(), console, title=title), console=console,
              screen=True, auto_refresh=False) as live:
        try:
            while True:
                time.sleep(interval)
                live.update(fitted_view(inspector.snapshot(), console, title=title),
                            refresh=True)
        except KeyboardInterrupt:
            pass


@cli.command()
def schedules(
    json_output: JsonOption = False,
    redis_url: RedisOption = None,
) -> None:
    """Periodic schedules: spec, next and last run, the last run's task and state, leader."""
    from relier.observability.schedules import report

    found = report(sync_client(redis_url))
    if json_output:
        print_json(found)
        return
    from rich.console import Console

    from relier.observability.render import schedules_view

    Console().print(schedules_view(found))


@cli.command()
def queues(
    json_output: JsonOption = False,
    redis_url: RedisOption = None,
) -> None:
    """Every known queue: waiting, in flight, delayed, dead-lettered, oldest message."""
    inspector = _inspector(redis_url)
    found = inspector.queues()
    if json_output:
        print_json(found)
        return
    from rich.console import Console

    from relier.observability.inspect import unconsumed_hints
    from relier.observability.render import hint_lines, queues_table

    console = Console()
    console.print(queues_table(found, console.width))
    for line in hint_lines(unconsumed_hints(found, inspector.workers())):
        console.print(line)


@cli.command()
def revoke(
    task_ids: Annotated[list[str], typer.Argument(help="The task id(s).")],
    terminate: Annotated[bool, typer.Option(
        "--terminate", help="Also stop it if it runs now (async: cancelled; sync: its "
                            "result discarded).")] = False,
    redis_url: RedisOption = None,
) -> None:
    """Revoke tasks, as Celery's `app.control.revoke`: not run if still waiting."""
    from relier.app import App

    app = App(redis_url=redis_url)
    guarded(lambda: ping(app.sync_client(), app.settings.redis_url))
    for task_id in task_ids:
        if not task_id.strip():
            fail("a task id cannot be empty")
        handle = app.result(task_id)
        handle.revoke(terminate=terminate)
        typer.echo(f"revoked {task_id} (state now {handle.state})")


@cli.command()
def purge(
    queue: Annotated[str, typer.Argument(help="The queue to empty.")],
    delayed: Annotated[bool, typer.Option(
        "--delayed", help="Also drop its delayed messages (eta, countdown, retries).")] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask.")] = False,
    redis_url: RedisOption = None,
) -> None:
    """Delete the messages waiting in a queue (running tasks are not touched)."""
    from relier.purge import purge_queue, waiting

    client = sync_client(redis_url)
    count, everything = waiting(client, queue), waiting(client, queue, delayed=True)
    if everything == 0:
        _known_queue(client, queue)  # a list a Celery producer filled counts too
    count = everything if delayed else count
    kept = everything - count
    keeps = f" ({kept} delayed message(s) are kept; --delayed drops them too)" if kept else ""
    if count == 0:
        typer.echo(f"{queue!r} has nothing waiting{keeps}")
        return
    if not yes and not typer.confirm(f"delete {count} message(s) waiting in {queue!r}{keeps}?"):
        raise typer.Exit(1)
    typer.echo(f"purged {purge_queue(client, queue, delayed=delayed)} message(s) "
               f"from {queue!r}{keeps}")


def _known_queue(client: Any, queue: str) -> None:
    """Fail with one line naming the known queues when ``queue`` is not one of them."""
    from relier.options import did_you_mean
    from relier.store import views

    known = views.relier_queues_sync(client)
    if queue not in known:
        fail(f"unknown queue {queue!r}{did_you_mean(queue, known)}; known queues: "
              f"{', '.join(known) or 'none yet'}")


cli.command()(doctor)
cli.command()(health)
