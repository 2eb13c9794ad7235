"""Reading stored results (Celery's ``celery-task-meta-<id>`` keys) and waiting for one.

The raw bytes are returned as stored: callers decode them with
:mod:`relier.protocol.results`, which reports an unreadable one as a ``PayloadError``.
Writes happen only inside the settle scripts (:mod:`relier.store.settles`), and
progress and revocations in :mod:`relier.store.control`.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager, AbstractContextManager

from relier.store import channels, keys
from relier.store.broker import as_bytes
from relier.store.clients import AsyncClient, SyncClient
from relier.store.cluster import is_cluster
from relier.store.keyspace import scan_sync


def _raw(value: object) -> bytes | None:
    return None if value is None else as_bytes(value)


def stored_sync(client: SyncClient, task_id: str) -> bytes | None:
    """The stored result of ``task_id`` (None: nothing stored, or it expired)."""
    return _raw(client.get(keys.result(task_id)))


async def stored(client: AsyncClient, task_id: str) -> bytes | None:
    """:func:`stored_sync` from async code."""
    return _raw(await client.get(keys.result(task_id)))


def stored_many_sync(client: SyncClient, task_ids: Sequence[str]) -> list[bytes | None]:
    """Each id's stored result, in order, in one round trip (one per node on a cluster,
    where the keys are in different slots)."""
    if not task_ids:
        return []
    names = [keys.result(t) for t in task_ids]
    found = (client.mget_nonatomic(names) if is_cluster(client)  # type: ignore[attr-defined]
             else client.mget(names))
    return [_raw(raw) for raw in found]


def ids_starting_sync(client: SyncClient, prefix: str) -> list[str]:
    """Ids of the stored results whose id starts with ``prefix`` (a SCAN of the keyspace,
    through :func:`relier.store.keyspace.scan_sync`)."""
    head = keys.result("")
    return [key[len(head):] for key in scan_sync(client, head, prefix)]


def watch(client: AsyncClient, task_id: str) -> AbstractAsyncContextManager[channels.Listener]:
    """Listen on the result's channel, where Celery's backend and Relier's settle
    scripts publish a ready result (subscribe first, then read the key: nothing is
    missed in between)."""
    return channels.listen(client, [keys.result(task_id)])


def watch_sync(client: SyncClient,
               task_id: str) -> AbstractContextManager[channels.SyncListener]:
    """:func:`watch` on a blocking client."""
    return channels.listen_sync(client, [keys.result(task_id)])
