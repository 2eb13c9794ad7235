"""The client types and constructors, so that nothing outside the store imports redis.

``SyncClient`` is the blocking client (CLI, heartbeat thread, scrape thread, ``push``),
``AsyncClient`` the event loop's. Code outside the store names these aliases; what it
does with a client should go through the store's typed calls (see docs/architecture.md
for the modules that still send raw commands).
"""

from __future__ import annotations

from typing import Any, TypeAlias

import redis
import redis.asyncio as aioredis

from relier.store import connections

SyncClient: TypeAlias = redis.Redis
AsyncClient: TypeAlias = aioredis.Redis


def sync_client(url: str, **options: Any) -> SyncClient:
    """A blocking client for ``url`` (``redis-sentinel://`` too; see connections.py)."""
    return connections.sync_client(url, **options)


def async_client(url: str, **options: Any) -> AsyncClient:
    """An asyncio client for ``url`` (``redis-sentinel://`` too; see connections.py)."""
    return connections.async_client(url, **options)
