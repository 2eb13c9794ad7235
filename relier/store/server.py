"""What the Redis server says about itself: PING, INFO, CONFIG GET, its run id, which of
Relier's scripts it has cached. For the worker's start, the resurrector's restart check
and ``relier doctor``; nothing here touches a key.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from relier.store import scripts
from relier.store.broker import as_bytes
from relier.store.clients import AsyncClient, SyncClient
from relier.store.errors import ErrorReply


def ping_sync(client: SyncClient) -> float:
    """PING; the round trip in ms (raises the client's error when Redis does not answer)."""
    started = time.perf_counter()
    client.ping()
    return (time.perf_counter() - started) * 1000


async def ping(client: AsyncClient) -> None:
    """PING from async code (raises the client's error when Redis does not answer)."""
    await client.ping()


def info_sync(client: SyncClient) -> dict[str, Any]:
    """``INFO`` (every section), as redis-py parses it."""
    found: dict[str, Any] = client.info()
    return found


async def run_id(client: AsyncClient) -> str:
    """The server's run id (a new one after every restart)."""
    info = await client.info("server")
    return str(info.get("run_id", ""))


def config_sync(client: SyncClient, name: str) -> str | None:
    """One CONFIG value, or None where CONFIG is disabled (many managed services) or the
    server does not know the name."""
    try:
        found = client.config_get(name)
    except ErrorReply:
        return None
    value = found.get(name)
    return None if value is None else as_bytes(value).decode(errors="replace")


@dataclass(frozen=True, slots=True)
class CachedScripts:
    """Which of Relier's scripts the server has cached."""

    total: int
    missing: list[str]


def cached_scripts_sync(client: SyncClient) -> CachedScripts:
    """Relier's scripts the server has not cached (a worker loads them all at start)."""
    loaded = client.script_exists(*scripts.SHAS.values())
    return CachedScripts(len(scripts.SHAS),
                         [name for name, ok in zip(scripts.SHAS, loaded, strict=True) if not ok])
