"""Every Redis read and write of periodic schedules, as small typed calls.

Writers (the beat, async): declaring a worker's schedules with a TTL, withdrawing them,
and the two fenced scripts that move a schedule on (``tick.lua`` sends a tick and
records it; ``tick_skip.lua`` records ticks that will not be sent). Readers (the beat,
and ``relier schedules``/``inspect`` through a blocking client): the live declarations,
each schedule's state, the leader. Bytes read back are decoded defensively: a value
that does not parse is reported and left out, never guessed at.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from relier.protocol import declaration
from relier.protocol.declaration import DeclarationError, Registration
from relier.store import keys
from relier.store.broker import (
    Broker,
    Enqueued,
    Outgoing,
    ScriptCall,
    as_bytes,
    enqueue_call,
    register_queue,
)
from relier.store.clients import AsyncClient, SyncClient
from relier.store.cluster import is_cluster

# Re-exported: the beat takes this lock by name (``app.lock``); the key is built here.
from relier.store.keys import SCHEDULER_LOCK as SCHEDULER_LOCK

log = logging.getLogger("relier.beat")


@dataclass(frozen=True, slots=True)
class ScheduleState:
    """What Redis remembers of one schedule (see :func:`relier.store.keys.schedule_state`)."""

    last_tick_ms: int | None = None
    last_run_ms: int | None = None
    last_sent_ms: int | None = None
    last_task_id: str | None = None
    last_status: str | None = None
    sent: int = 0
    missed: int = 0
    last_missed_ms: int | None = None
    last_missed_reason: str | None = None


@dataclass(frozen=True, slots=True)
class Leader:
    """The worker holding the scheduler lease, and its fencing token."""

    worker: str
    token: int


@dataclass(frozen=True, slots=True)
class TickOutcome:
    """What ``tick.lua`` did: ``sent`` (``enqueued`` says how), ``rejected`` (admission
    refused it; recorded as missed with ``reason``), ``done`` (already recorded) or
    ``stale`` (the caller no longer leads; nothing written)."""

    status: Literal["sent", "rejected", "done", "stale"]
    enqueued: Enqueued | None = None
    reason: str = ""


# -- declarations -------------------------------------------------------------------------

async def declare(client: AsyncClient, registration: Registration, ttl_ms: int) -> None:
    """Publish (or renew) one worker's declarations, atomically with its set membership
    (on a cluster, where the two live in different slots, one after the other: a
    declaration missing from the set is added by the next renewal)."""
    async with client.pipeline(transaction=not is_cluster(client)) as pipe:
        pipe.set(keys.schedule_declaration(registration.worker),
                 declaration.encode(registration), px=ttl_ms)
        pipe.sadd(keys.SCHEDULE_DECLARERS, registration.worker)
        await pipe.execute()


async def withdraw(client: AsyncClient, worker_id: str) -> None:
    """Remove a stopping worker's declarations at once (not waiting for the TTL)."""
    async with client.pipeline(transaction=not is_cluster(client)) as pipe:
        pipe.delete(keys.schedule_declaration(worker_id))
        pipe.srem(keys.SCHEDULE_DECLARERS, worker_id)
        await pipe.execute()


async def registrations(client: AsyncClient) -> list[Registration]:
    """The declarations of every worker whose declaration has not expired."""
    ids = sorted(as_bytes(m).decode() for m in await client.smembers(keys.SCHEDULE_DECLARERS))
    if not ids:
        return []
    names = [keys.schedule_declaration(i) for i in ids]
    raws = await (client.mget_nonatomic(names) if is_cluster(client)  # type: ignore[attr-defined]
                  else client.mget(names))
    gone = [i for i, raw in zip(ids, raws, strict=True) if raw is None]
    if gone:
        await client.srem(keys.SCHEDULE_DECLARERS, *gone)
    return _decoded(ids, raws)


def registrations_sync(client: SyncClient) -> list[Registration]:
    """:func:`registrations` through a blocking client (read-only: prunes nothing)."""
    ids = sorted(as_bytes(m).decode() for m in client.smembers(keys.SCHEDULE_DECLARERS))
    if not ids:
        return []
    names = [keys.schedule_declaration(i) for i in ids]
    return _decoded(ids, client.mget_nonatomic(names) if is_cluster(client)  # type: ignore[attr-defined]
                    else client.mget(names))


def _decoded(ids: Sequence[str], raws: Sequence[Any]) -> list[Registration]:
    found = []
    for worker_id, raw in zip(ids, raws, strict=True):
        if raw is None:
            continue
        try:
            found.append(declaration.decode(as_bytes(raw)))
        except DeclarationError as exc:
            log.error("ignoring the schedules declared by worker %s: %s", worker_id, exc)
    return found


# -- state ----------------------------------------------------------------------------------

async def states(client: AsyncClient, queues: Mapping[str, str]) -> dict[str, ScheduleState]:
    """Each schedule's state (``queues``: schedule name -> the queue it sends to), in one
    round trip."""
    async with client.pipeline(transaction=False) as pipe:
        for name, queue in queues.items():
            pipe.hgetall(keys.schedule_state(name, queue))
        found = await pipe.execute()
    return {name: parse_state(raw) for name, raw in zip(queues, found, strict=True)}


def states_sync(client: SyncClient, queues: Mapping[str, str]) -> dict[str, ScheduleState]:
    """:func:`states` through a blocking client."""
    with client.pipeline(transaction=False) as pipe:
        for name, queue in queues.items():
            pipe.hgetall(keys.schedule_state(name, queue))
        found = pipe.execute()
    return {name: parse_state(raw) for name, raw in zip(queues, found, strict=True)}


def parse_state(raw: dict[Any, Any]) -> ScheduleState:
    """A state hash as read; a field that does not parse counts as absent."""
    fields = {as_bytes(k).decode(errors="replace"): as_bytes(v).decode(errors="replace")
              for k, v in raw.items()}
    return ScheduleState(
        last_tick_ms=_int(fields.get("last_tick_ms")),
        last_run_ms=_int(fields.get("last_run_ms")),
        last_sent_ms=_int(fields.get("last_sent_ms")),
        last_task_id=fields.get("last_task_id") or None,
        last_status=fields.get("last_status") or None,
        sent=_int(fields.get("sent")) or 0,
        missed=_int(fields.get("missed")) or 0,
        last_missed_ms=_int(fields.get("last_missed_ms")),
        last_missed_reason=fields.get("last_missed_reason") or None,
    )


def _int(text: str | None) -> int | None:
    try:
        return int(text) if text is not None else None
    except ValueError:
        return None


def leader_sync(client: SyncClient) -> Leader | None:
    """Who holds the scheduler lease now (None: nobody leads)."""
    return parse_leader(client.get(keys.lock(keys.SCHEDULER_LOCK)))


def parse_leader(raw: Any) -> Leader | None:
    if raw is None:
        return None
    worker, _, token = as_bytes(raw).decode(errors="replace").rpartition(" ")
    token_value = _int(token)
    return Leader(worker, token_value) if worker and token_value is not None else None


# -- the fenced moves -----------------------------------------------------------------------

def _lock_and_state(broker: Broker, name: str, queue: str) -> list[str]:
    """The keys the fence reads: the lock and the state, or on a cluster the state twice
    (the lock is in another slot: the lead is checked by fencing token, lib/leads.lua)."""
    state = keys.schedule_state(name, queue)
    return [state if broker.cluster else keys.lock(keys.SCHEDULER_LOCK), state]


def _fence_mode(broker: Broker) -> str:
    return "token" if broker.cluster else "lock"


async def tick(
    broker: Broker, *, holder: str, name: str, tick_ms: int, now_ms: int, batch: Outgoing
) -> TickOutcome:
    """Send one tick's message (``batch``, to its queue) and record the tick, if
    ``holder`` still leads."""
    inner = enqueue_call(batch, cluster=broker.cluster)
    if broker.cluster:
        await register_queue(broker.client, batch.queue)  # see enqueue_sync
    reply = await broker.run(ScriptCall(
        "tick", [*_lock_and_state(broker, name, batch.queue), *inner.keys],
        [holder, tick_ms, now_ms, _fence_mode(broker), *inner.args]))
    status = as_bytes(reply[0])
    if status in (b"stale", b"done"):
        return TickOutcome(status.decode())  # type: ignore[arg-type]
    if status == b"rejected":
        why, depth, limit = (as_bytes(v).decode() for v in (reply[4], reply[1], reply[2]))
        return TickOutcome("rejected", reason=f"admission refused ({why}: depth {depth}, "
                                              f"limit {limit})")
    entry = Enqueued(as_bytes(reply[1]).decode(), as_bytes(reply[2]).decode(),  # type: ignore[arg-type]
                     as_bytes(reply[3]))
    return TickOutcome("sent", entry)


async def skip(
    broker: Broker, *, holder: str, name: str, queue: str, through_ms: int, count: int,
    reason: str,
) -> bool | None:
    """Record ``count`` ticks up to ``through_ms`` as missed. True: written; None: they
    were already past; False: ``holder`` no longer leads (nothing written)."""
    return _fenced(await broker.run(ScriptCall(
        "tick_skip", _lock_and_state(broker, name, queue),
        [holder, "missed", through_ms, count, reason, _fence_mode(broker)])))


async def baseline(
    broker: Broker, *, holder: str, name: str, queue: str, now_ms: int
) -> bool | None:
    """Start a schedule seen for the first time at ``now_ms`` (nothing earlier is due)."""
    return _fenced(await broker.run(ScriptCall(
        "tick_skip", _lock_and_state(broker, name, queue),
        [holder, "baseline", now_ms, 0, "", _fence_mode(broker)])))


def _fenced(reply: Any) -> bool | None:
    value = int(reply)
    return None if value < 0 else bool(value)
