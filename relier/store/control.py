"""Every Redis access of remote control, revocation and progress reports, as small typed
calls (they move into ``relier/store/`` with the rest of the Redis access).

* revoking: ``revoke.lua`` adds ids to the revoked set and stores ``REVOKED`` for those
  not started, in one step; workers read the set back with :func:`revoked_since`;
* progress: ``progress.lua`` stores a running task's custom state unless a ready one is
  already there;
* pidbox: replies are LPUSHed to the queue bound to the client's routing key (read from
  kombu's binding set, as kombu routes a direct exchange; no binding: the client is gone
  and the reply is dropped), and broadcasts are PUBLISHed on the fanout channel.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any, Final

from relier.protocol import results
from relier.store import channels, keys, runner
from relier.store.broker import ScriptCall, as_bytes, call_sync
from relier.store.clients import AsyncClient, SyncClient
from relier.store.cluster import is_cluster

#: kombu's separator inside a binding-set member.
_BINDING_SEP: Final = b"\x06\x16"


@dataclass(frozen=True, slots=True)
class Revocation:
    """Task ids to revoke, and how long the revocation and the results are kept."""

    task_ids: Sequence[str]
    revoke_ttl_s: int
    result_ttl_s: int
    #: Ids whose result is left alone (they run on the revoking worker: as a Celery
    #: worker does, it lets them finish, or writes REVOKED itself when it stops them).
    keep_result: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class RevokedPage:
    """Ids revoked at or after some moment, and the newest revocation time seen (ms)."""

    task_ids: list[str]
    newest_ms: int


def revoke_call(revocation: Revocation) -> ScriptCall:
    """The ``revoke.lua`` call; its reply is how many REVOKED results it stored."""
    ids = list(dict.fromkeys(revocation.task_ids))
    args: list[str | bytes | int | float] = [revocation.revoke_ttl_s, revocation.result_ttl_s]
    for task_id in ids:
        stored = b"" if task_id in revocation.keep_result else results.encode(
            results.revoked(task_id, "revoked"))
        args += [task_id, stored]
    return ScriptCall("revoke", [keys.REVOKED, *(keys.result(i) for i in ids)], args)


def _revoke_on_cluster(revocation: Revocation) -> tuple[ScriptCall, list[ScriptCall]]:
    """On a cluster the result keys are in other slots than the revoked set: first the
    set (then no worker starts the ids), then each REVOKED result on its own."""
    ids = list(dict.fromkeys(revocation.task_ids))
    args: list[str | bytes | int | float] = [revocation.revoke_ttl_s, revocation.result_ttl_s]
    for task_id in ids:
        args += [task_id, b""]
    results_calls = [
        ScriptCall("revoke_result", [keys.result(i)],
                   [results.encode(results.revoked(i, "revoked")), revocation.result_ttl_s])
        for i in ids if i not in revocation.keep_result]
    return ScriptCall("revoke", [keys.REVOKED], args), results_calls


def revoke_sync(client: SyncClient, revocation: Revocation) -> int:
    """Revoke from sync code (``handle.revoke``, ``relier revoke``); how many REVOKED
    results were stored."""
    if not is_cluster(client):
        return int(call_sync(client, revoke_call(revocation)))
    first, then = _revoke_on_cluster(revocation)
    call_sync(client, first)
    return sum(int(call_sync(client, call)) for call in then)


async def revoke(client: AsyncClient, revocation: Revocation) -> int:
    """:func:`revoke_sync` from async code (a revoke broadcast, ``handle.arevoke``)."""
    if not is_cluster(client):
        return int(await runner.run(client, revoke_call(revocation)))
    first, then = _revoke_on_cluster(revocation)
    await runner.run(client, first)
    return sum([int(await runner.run(client, call)) for call in then])


def progress_call(task_id: str, meta: bytes, ttl_s: int) -> ScriptCall:
    """The ``progress.lua`` call; its reply is 1 when stored, 0 when a ready state won."""
    return ScriptCall("progress", [keys.result(task_id)], [meta, ttl_s])


def store_progress_sync(client: SyncClient, task_id: str, meta: bytes, ttl_s: int) -> bool:
    return bool(call_sync(client, progress_call(task_id, meta, ttl_s)))


async def revoked_since(client: AsyncClient, since_ms: int) -> RevokedPage:
    """Ids revoked at or after ``since_ms`` (Redis's clock), oldest first."""
    rows: Any = await client.zrangebyscore(
        keys.REVOKED, since_ms, "+inf", withscores=True)
    ids = [as_bytes(row[0]).decode(errors="replace") for row in rows]
    newest = int(max((float(row[1]) for row in rows), default=since_ms))
    return RevokedPage(ids, newest)


def _bound_queue(members: set[bytes], routing_key: str) -> str | None:
    """The queue a direct exchange routes ``routing_key`` to, from kombu's binding set."""
    for member in members:
        parts = member.split(_BINDING_SEP)
        if len(parts) == 3 and parts[0].decode(errors="replace") == routing_key:
            return parts[2].decode(errors="replace")
    return None


async def push_reply(client: AsyncClient, exchange: str, routing_key: str,
                     envelope: bytes) -> bool:
    """LPUSH a reply where the client BRPOPs it; False when no queue is bound (gone)."""
    members = {as_bytes(m) for m in await client.smembers(keys.pidbox_bindings(exchange))}
    queue = _bound_queue(members, routing_key)
    if queue is None:
        return False
    await client.lpush(keys.queue_list(queue), envelope)
    return True


def broadcast_sync(client: SyncClient, envelope: bytes) -> int:
    """PUBLISH a control request to every worker; returns how many listeners got it."""
    return int(client.publish(keys.pidbox_channel(db_of(client)), envelope))


async def abroadcast(client: AsyncClient, envelope: bytes) -> int:
    """:func:`broadcast_sync` from async code."""
    return int(await client.publish(keys.pidbox_channel(db_of(client)), envelope))


def pidbox_channel(client: SyncClient | AsyncClient) -> str:
    """The pidbox fanout channel of the client's database (for logs)."""
    return keys.pidbox_channel(db_of(client))


def listen_pidbox(client: AsyncClient) -> AbstractAsyncContextManager[channels.Listener]:
    """Subscribe to the pidbox channel and, in kombu's form with a routing key, to
    ``<channel>/*``: every request a Celery client or Flower publishes."""
    channel = pidbox_channel(client)
    return channels.listen(client, [channel], patterns=[channel + "/*"])


def db_of(client: SyncClient | AsyncClient) -> int:
    """The database number a client uses (kombu prefixes fanout channels with it); a
    cluster has only database 0."""
    if is_cluster(client):
        return 0
    return int(client.connection_pool.connection_kwargs.get("db", 0) or 0)
