"""The worker registry in Redis: entries, heartbeat keys and published running tables.

Three keys per worker, written by its heartbeat thread (blocking client): the entry in
the ``relier:workers`` hash, the heartbeat key whose TTL says it is alive, and the table
of tasks it runs. The resurrector (async) reads entries and heartbeats and marks the
dead; ``inspect``, ``health`` and the metrics read all three through a blocking client.

Every entry read back is hostile: one that does not decode is logged, counted in
:attr:`Entries.unreadable` and left out (its queues are unknown, so nothing can act on
it); a running table that does not decode reads as empty (it is only a view).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from relier.errors import PayloadError
from relier.protocol import hostile, registry
from relier.protocol.registry import RunningTask, WorkerInfo
from relier.store import keys
from relier.store.broker import as_bytes
from relier.store.clients import AsyncClient, SyncClient

log = logging.getLogger("relier.registry")


@dataclass(frozen=True, slots=True)
class Entries:
    """The registry as read: the entries that decode, and how many did not."""

    workers: list[WorkerInfo] = field(default_factory=list)
    unreadable: int = 0


def _entries(raw: Mapping[Any, Any]) -> Entries:
    workers: list[WorkerInfo] = []
    unreadable = 0
    for worker_id, value in raw.items():
        try:
            workers.append(registry.decode(as_bytes(value)))
        except PayloadError as exc:
            unreadable += 1
            log.warning("registry entry of worker %r is unreadable, ignored: %s",
                        as_bytes(worker_id).decode(errors="replace"), exc.detail)
    return Entries(workers, unreadable)


# -- readers (blocking: inspect, health, metrics, doctor) ----------------------------------

def entries_sync(client: SyncClient) -> Entries:
    """Every registry entry that decodes (see :class:`Entries`)."""
    return _entries(client.hgetall(keys.WORKERS))


def beating_sync(client: SyncClient, worker_ids: Sequence[str]) -> list[bool]:
    """Whether each worker's heartbeat key exists, in order (one round trip)."""
    if not worker_ids:
        return []
    with client.pipeline(transaction=False) as pipe:
        for worker_id in worker_ids:
            pipe.exists(keys.heartbeat(worker_id))
        return [bool(found) for found in pipe.execute()]


def running_tables_sync(
    client: SyncClient, worker_ids: Sequence[str]
) -> dict[str, list[RunningTask]]:
    """Each worker's last published table of running tasks (one round trip; an
    unreadable or missing table reads as empty)."""
    if not worker_ids:
        return {}
    with client.pipeline(transaction=False) as pipe:
        for worker_id in worker_ids:
            pipe.get(keys.running(worker_id))
        found = pipe.execute()
    return {worker_id: registry.decode_running(as_bytes(raw)) if raw else []
            for worker_id, raw in zip(worker_ids, found, strict=True)}


def entry_sync(client: SyncClient, worker_id: str) -> WorkerInfo | None:
    """One worker's entry; None when it is missing or unreadable."""
    raw = client.hget(keys.WORKERS, worker_id)
    return None if raw is None else hostile.read_or_none(registry.decode, as_bytes(raw))


# -- the heartbeat thread's writes -----------------------------------------------------------

def beat_sync(client: SyncClient, info: WorkerInfo, *, ttl_ms: int,
              running: list[RunningTask] | None = None) -> None:
    """Re-arm the heartbeat key, rewrite the entry and (when given) the running table,
    in one round trip."""
    with client.pipeline(transaction=False) as pipe:
        pipe.set(keys.heartbeat(info.id), info.last_heartbeat, px=ttl_ms)
        pipe.hset(keys.WORKERS, info.id, registry.encode(info))
        if running is not None:
            pipe.set(keys.running(info.id), registry.encode_running(running),
                     ex=registry.RUNNING_TABLE_TTL_S)
        pipe.execute()


def publish_running_sync(client: SyncClient, worker_id: str,
                         running: list[RunningTask]) -> None:
    """Rewrite a worker's table of running tasks (between beats, after a change)."""
    client.set(keys.running(worker_id), registry.encode_running(running),
               ex=registry.RUNNING_TABLE_TTL_S)


def deregister_sync(client: SyncClient, worker_id: str) -> None:
    """Remove a worker that stopped cleanly: heartbeat key, running table and entry."""
    with client.pipeline(transaction=False) as pipe:
        pipe.delete(keys.heartbeat(worker_id))
        pipe.delete(keys.running(worker_id))
        pipe.hdel(keys.WORKERS, worker_id)
        pipe.execute()


def flatline_sync(client: SyncClient, worker_id: str) -> None:
    """Delete the heartbeat key now (the process is about to end abruptly), so the
    resurrector need not wait for its TTL."""
    client.delete(keys.heartbeat(worker_id))


# -- the resurrector (async) -------------------------------------------------------------------

async def entries(client: AsyncClient) -> Entries:
    """:func:`entries_sync` from async code."""
    return _entries(await client.hgetall(keys.WORKERS))


async def beating(client: AsyncClient, worker_ids: Sequence[str]) -> list[bool]:
    """:func:`beating_sync` from async code."""
    if not worker_ids:
        return []
    async with client.pipeline(transaction=False) as pipe:
        for worker_id in worker_ids:
            pipe.exists(keys.heartbeat(worker_id))
        return [bool(found) for found in await pipe.execute()]


async def record(client: AsyncClient, info: WorkerInfo) -> None:
    """Write a worker's entry as it is now (the resurrector marking it dead)."""
    await client.hset(keys.WORKERS, info.id, registry.encode(info))


async def forget(client: AsyncClient, worker_id: str) -> None:
    """Drop a long-dead worker's entry."""
    await client.hdel(keys.WORKERS, worker_id)


async def announce_queues(client: AsyncClient, queues: Sequence[str]) -> None:
    """Add queues to the set of known queues (what ``inspect`` and ``dlq`` list)."""
    if queues:
        await client.sadd(keys.KNOWN_QUEUES, *queues)
