"""The one way Relier runs a Lua script: by SHA, async or blocking, reloaded on NOSCRIPT.

A :class:`ScriptCall` is data (script name, keys, arguments); an :class:`Op` adds how
to read its reply into a typed value. The same ``Op`` runs on the worker's async client
(:func:`perform`, or many in one pipeline with :func:`run_many`) and on a blocking
client (:func:`perform_sync`), so the two faces can never disagree about a key or an
argument's place.

A Redis that restarted or failed over has an empty script cache: a call that meets
``NOSCRIPT`` loads the scripts it needs and is sent again; in a pipeline only the calls
that did not run are re-sent.

On a Redis Cluster, redis-py refuses scripts in a pipeline (each may go to another node),
so "many calls in one round trip" becomes many calls in flight at once, and a script is
loaded on every primary.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import redis
import redis.asyncio as aioredis

from relier.store import scripts
from relier.store.cluster import is_cluster
from relier.store.errors import is_noscript
from relier.store.scripts import ScriptName

if TYPE_CHECKING:
    from relier.store.coalesce import PlainAck
    from relier.store.outbox import Fenced

T = TypeVar("T")
Arg = str | bytes | int | float


@dataclass(frozen=True, slots=True)
class ScriptCall:
    """One script to run: its name, its keys and its arguments, in the script's order."""

    name: ScriptName
    keys: Sequence[str]
    args: Sequence[Arg]


@dataclass(frozen=True, slots=True)
class Op(Generic[T]):
    """A script call and the reading of its reply (which raises on a malformed one).

    ``fenced`` builds the same operation as a Redis Cluster runs it, when ``call`` spans
    slots (a settle: see :mod:`relier.store.outbox`); it is called only on a cluster, so
    one server never pays for it. :func:`relier.store.ops.run_all` picks.
    ``plain_ack`` says that ``call`` is an ack that one server may run together with
    others of its processing list (:mod:`relier.store.coalesce`); ``read`` then reads
    its part of the shared reply, which is what ``call`` alone would have replied."""

    call: ScriptCall
    read: Callable[[Any], T]
    fenced: Callable[[], Fenced] | None = None
    plain_ack: PlainAck | None = None

    def cluster_form(self) -> Fenced | None:
        """The cluster form, built now (None: ``call`` runs as it is there too)."""
        return self.fenced() if self.fenced is not None else None


def _evalsha_args(call: ScriptCall) -> tuple[Any, ...]:
    return (scripts.SHAS[call.name], len(call.keys), *call.keys, *call.args)


async def load(client: aioredis.Redis, names: Sequence[ScriptName] = scripts.SCRIPT_NAMES) -> None:
    """Load scripts into the server's cache (all of them by default) in one round trip
    (into every primary's, on a cluster)."""
    if is_cluster(client):
        for name in dict.fromkeys(names):
            await client.script_load(scripts.source(name))
        return
    async with client.pipeline(transaction=False) as pipe:
        for name in dict.fromkeys(names):
            pipe.script_load(scripts.source(name))
        await pipe.execute()


async def run(client: aioredis.Redis, call: ScriptCall) -> Any:
    """Run one script; its reply, or the error it raised."""
    try:
        return await client.evalsha(*_evalsha_args(call))
    except Exception as exc:
        if not is_noscript(exc):
            raise
        await load(client, [call.name])
        return await client.evalsha(*_evalsha_args(call))


def run_sync(client: redis.Redis, call: ScriptCall) -> Any:
    """:func:`run` on a blocking client."""
    try:
        return client.evalsha(*_evalsha_args(call))
    except Exception as exc:
        if not is_noscript(exc):
            raise
        client.script_load(scripts.source(call.name))  # every primary's cache, on a cluster
        return client.evalsha(*_evalsha_args(call))


async def run_replicated(
    client: aioredis.Redis, call: ScriptCall, replicas: int, timeout_ms: int
) -> tuple[Any, int]:
    """Run one script, then ``WAIT`` for ``replicas`` replicas on the same connection (a
    pipeline holds one); the script's reply and how many replicas confirmed it."""
    for attempt in range(2):
        async with client.pipeline(transaction=False) as pipe:
            pipe.evalsha(*_evalsha_args(call))
            pipe.wait(replicas, timeout_ms)
            reply, confirmed = await pipe.execute(raise_on_error=False)
        if is_noscript(reply) and attempt == 0:
            await load(client, [call.name])
            continue
        break
    if isinstance(reply, Exception):
        raise reply
    return reply, int(confirmed)


def run_replicated_sync(
    client: redis.Redis, call: ScriptCall, replicas: int, timeout_ms: int
) -> tuple[Any, int]:
    """:func:`run_replicated` on a blocking client."""
    for attempt in range(2):
        with client.pipeline(transaction=False) as pipe:
            pipe.evalsha(*_evalsha_args(call))
            pipe.wait(replicas, timeout_ms)
            reply, confirmed = pipe.execute(raise_on_error=False)
        if is_noscript(reply) and attempt == 0:
            client.script_load(scripts.source(call.name))
            continue
        break
    if isinstance(reply, Exception):
        raise reply
    return reply, int(confirmed)


async def run_many(client: aioredis.Redis, calls: Sequence[ScriptCall]) -> list[Any]:
    """Many calls in one round trip; each reply, or its error, in order."""
    results = await _pipeline(client, calls)
    missing = [i for i, value in enumerate(results) if is_noscript(value)]
    if missing:
        await load(client, [calls[i].name for i in missing])
        again = await _pipeline(client, [calls[i] for i in missing])
        for i, value in zip(missing, again, strict=True):
            results[i] = value
    return results


async def _pipeline(client: aioredis.Redis, calls: Sequence[ScriptCall]) -> list[Any]:
    if is_cluster(client):
        return list(await asyncio.gather(*(_evalsha(client, c) for c in calls),
                                         return_exceptions=True))
    async with client.pipeline(transaction=False) as pipe:
        for call in calls:
            pipe.evalsha(*_evalsha_args(call))
        return list(await pipe.execute(raise_on_error=False))


async def _evalsha(client: aioredis.Redis, call: ScriptCall) -> Any:
    return await client.evalsha(*_evalsha_args(call))


async def perform(client: aioredis.Redis, op: Op[T]) -> T:
    """Run an operation on an async client and read its reply."""
    return op.read(await run(client, op.call))


def perform_sync(client: redis.Redis, op: Op[T]) -> T:
    """Run an operation on a blocking client and read its reply."""
    return op.read(run_sync(client, op.call))
