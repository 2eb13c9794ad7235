"""``relier doctor`` and ``relier health``: checking a deployment from outside it.

``doctor`` reads the Redis it points at (and what its sentinels or its cluster say of
themselves); ``health`` asks whether a worker on this host still beats (a container's
health check). Registered on the root command by ``cli.py``.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

from relier.cli_common import JsonOption, RedisOption, guarded, sync_client
from relier.store.errors import StoreError


def doctor(
    json_output: JsonOption = False,
    stuck_after: Annotated[float, typer.Option(
        help="Seconds a queue's next message may wait before it counts as stuck.")] = 300.0,
    redis_url: RedisOption = None,
) -> None:
    """Check the Redis this deployment uses and say what to fix.

    Exits 1 on a problem that can lose tasks (eviction, memory nearly full, a failed
    check); warnings that are normal on a development Redis (no persistence, no worker
    running) exit 0.
    """
    from relier.app import App
    from relier.observability.doctor import diagnose
    from relier.settings import redact

    url = App(redis_url=redis_url).settings.redis_url
    client = sync_client(redis_url)
    found = diagnose(client, redact(url), stuck_after_s=stuck_after,
                     sentinel=_sentinel_view(url), cluster=_cluster_view(url, client))
    if json_output:
        import msgspec

        typer.echo(msgspec.json.format(msgspec.json.encode(
            {"url": found.url, "healthy": found.healthy, "checks": found.checks,
             "problems": found.problems})).decode())
    else:
        from relier.observability.render import diagnosis

        diagnosis(found)
    if found.problems:
        raise typer.Exit(1)


def health(
    host: Annotated[str | None, typer.Option(
        "--host", help="Check this host's workers (default: this machine's hostname).",
        show_default=False)] = None,
    redis_url: RedisOption = None,
) -> None:
    """Exit 0 if a worker on this host is heartbeating, else 1 (for container health checks)."""
    from relier.observability.health import check_host

    found = check_host(sync_client(redis_url), host)
    typer.echo(found.summary(), err=not found.healthy)
    if not found.healthy:
        raise typer.Exit(1)


def _cluster_view(url: str, client: Any) -> Any:
    """What the cluster says of itself, for a ``redis+cluster://`` URL; None for any other."""
    from relier.config_errors import explain
    from relier.store import cluster

    def ask() -> Any:
        try:
            return cluster.view(client)
        except StoreError as exc:
            raise explain(url, exc) or exc from None

    return guarded(ask) if cluster.is_cluster_url(url) else None


def _sentinel_view(url: str) -> Any:
    """What the sentinels say, for a ``redis+sentinel://`` URL; None for any other."""

    from relier.config_errors import explain
    from relier.store.connections import is_sentinel_url, sentinel_view

    def ask() -> Any:
        try:
            return sentinel_view(url)
        except StoreError as exc:
            raise explain(url, exc) or exc from None

    return guarded(ask) if is_sentinel_url(url) else None
