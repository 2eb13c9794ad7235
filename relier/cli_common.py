"""What every `relier` command shares: option types, one-line failures, a checked
blocking client and JSON output."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, TypeVar

import typer

from relier.errors import RelierError
from relier.store.errors import StoreError

T = TypeVar("T")

AppOption = Annotated[
    str | None,
    typer.Option("-A", "--app", help="Task modules to import, or module:app (env RELIER_APP)."),
]
RedisOption = Annotated[
    str | None,
    typer.Option("--redis-url", help="Redis URL (env RELIER_REDIS_URL).", show_default=False),
]
LogLevelOption = Annotated[str, typer.Option(
    "-l", "--loglevel", "--log-level", help="debug, info, warning, error.")]
LogFormatOption = Annotated[str, typer.Option("--log-format", help="text or json.")]

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON.")]


def fail(message: str) -> None:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(2)


def guarded(action: Callable[[], T]) -> T:
    """Run ``action``; a Relier error becomes one line on stderr and exit code 2."""
    try:
        return action()
    except RelierError as exc:
        fail(str(exc))
        raise AssertionError("unreachable") from exc


def sync_client(redis_url: str | None) -> Any:
    from relier.app import App

    app = App(redis_url=redis_url)
    client = guarded(app.sync_client)
    guarded(lambda: ping(client, app.settings.redis_url))
    return client


def ping(client: Any, url: str) -> None:

    from relier.config_errors import explain
    from relier.store import server

    try:
        server.ping_sync(client)
    except (StoreError, OSError) as exc:
        raise explain(url, exc) or exc from None


def print_json(value: Any) -> None:
    import msgspec

    typer.echo(msgspec.json.format(msgspec.json.encode(value)).decode())
