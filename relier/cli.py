"""The ``relier`` command: a thin typer layer over the library.

Every command turns Relier's own errors into one clear line on stderr and exit code 2,
not a traceback.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Annotated, Any, TypeVar

import typer

from relier import logs
from relier.errors import RelierError
from relier.protocol import keys

T = TypeVar("T")

cli = typer.Typer(
    name="relier",
    help="Relier: an asyncio task runtime that speaks Celery's protocol on Redis.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

AppOption = Annotated[
    str | None,
    typer.Option("-A", "--app", help="Task modules to import, or module:app (env RELIER_APP)."),
]
RedisOption = Annotated[
    str | None,
    typer.Option("--redis-url", help="Redis URL (env RELIER_REDIS_URL).", show_default=False),
]
LogLevelOption = Annotated[str, typer.Option("--log-level", help="debug, info, warning, error.")]
LogFormatOption = Annotated[str, typer.Option("--log-format", help="text or json.")]


def _fail(message: str) -> None:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(2)


def guarded(action: Callable[[], T]) -> T:
    """Run ``action``; a Relier error becomes one line on stderr and exit code 2."""
    try:
        return action()
    except RelierError as exc:
        _fail(str(exc))
        raise AssertionError("unreachable") from exc


@cli.command()
def worker(
    app: AppOption = None,
    queues: Annotated[
        str, typer.Option("-Q", "--queues", help="Comma-separated queues to consume.")
    ] = ",".join(keys.DEFAULT_QUEUES),
    concurrency: Annotated[int, typer.Option("-c", "--concurrency", min=1)] = 100,
    redis_url: RedisOption = None,
    log_level: LogLevelOption = "info",
    log_format: LogFormatOption = "text",
) -> None:
    """Run a worker: take tasks from the queues and run them until SIGTERM."""
    from relier.loader import load_app
    from relier.runtime import loop
    from relier.runtime.worker import Worker

    logs.configure(log_level, log_format)
    relier_app = guarded(lambda: load_app(app))
    if redis_url:
        relier_app.configure(redis_url=redis_url)
    names = [q.strip() for q in queues.split(",") if q.strip()]
    runner = guarded(lambda: Worker(relier_app, names, concurrency))
    guarded(lambda: loop.run(runner.run))


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
    return cli(args=argv if argv is not None else sys.argv[1:])
