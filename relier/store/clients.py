"""The client types and constructors, so that nothing outside the store imports redis.

``SyncClient`` is the blocking client (CLI, heartbeat thread, scrape thread, ``push``),
``AsyncClient`` the event loop's (either may be a cluster client: see cluster.py). Code
outside the store names these aliases and hands them to the store's typed calls; it
sends no command itself (``tests/test_layers.py`` checks).
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
