"""The outbox: how a settle keeps every guarantee on a Redis Cluster.

On one server, ending a delivery is one script: take the message out of the worker's
processing list (the fence that refuses a zombie) and, only if that lands, store the
result, update the idempotency record, push the DLQ entry or the next chain step. On a
cluster those keys live in different slots, and no script may span slots. So the settle
becomes:

1. ``fence.lua`` in the queue's slot: take the message out of the processing list and,
   in the same atomic step, push an :class:`Entry` listing the other writes (the
   :data:`Effect` values) to the queue's outbox list;
2. the caller applies those effects (each a command on one key; a batch of settles in
   one pipeline), then removes the entry;
3. a worker that died between 1 and 2 leaves the entry behind, and :func:`sweep` (run by
   every worker for the queues it holds) applies it once it is older than
   :data:`SWEEP_AFTER_MS`.

Nothing is lost (the entry is written with the fence), and a zombie writes nothing (its
fence fails, so it has no entry). The price: an effect may be applied twice if its
applier stops between applying and removing the entry, which is harmless for all but a
push (a chain step, a DLQ entry may then appear twice: at-least-once, as everywhere else).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final, TypeAlias

import msgspec
import redis.asyncio as aioredis

from relier.store import keys, runner
from relier.store.runner import ScriptCall

log = logging.getLogger("relier.store")

#: An entry this old was left by an applier that stopped; a sweep applies it.
SWEEP_AFTER_MS: Final = 30_000
#: Entries one sweep looks at per queue (the oldest: the tail of the list).
SWEEP_BATCH: Final = 100


class Store(msgspec.Struct, tag="store", array_like=True):
    """A result: SET with a TTL, then PUBLISH on the same name (Celery's backend does both)."""

    key: str
    value: bytes
    ttl_s: int


class Push(msgspec.Struct, tag="push", array_like=True):
    """A message onto a list: LPUSH (the tail, new work), or RPUSH (the consuming end)."""

    key: str
    value: bytes
    consuming_end: bool = False


class Park(msgspec.Struct, tag="park", array_like=True):
    """A message into a sorted set (delayed or deferred) with its due time in ms."""

    key: str
    due_ms: int
    value: bytes


class Count(msgspec.Struct, tag="count", array_like=True):
    """HINCRBY one field of a hash (a DLQ's count by reason)."""

    key: str
    field: str
    by: int = 1


class Succeeded(msgspec.Struct, tag="succeeded", array_like=True):
    """An idempotency record marked succeeded with its own copy of the result."""

    key: str
    task_id: str
    result: bytes
    ttl_s: int


class DropRecord(msgspec.Struct, tag="drop_record", array_like=True):
    """An idempotency record dropped, unless a later dispatch owns it."""

    key: str
    task_id: str


Effect: TypeAlias = Store | Push | Park | Count | Succeeded | DropRecord


class Entry(msgspec.Struct, array_like=True):
    """What one settle left to do, and when (ms, the settler's clock)."""

    at_ms: int
    effects: list[Effect]


_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(Entry)


@dataclass(frozen=True, slots=True)
class Fenced:
    """A settle as the cluster runs it: the fence in the queue's slot, then ``effects``."""

    processing: str
    outbox: str
    raw: bytes
    effects: tuple[Effect, ...]
    entry: bytes

    @classmethod
    def of(cls, *, queue: str, processing: str, raw: bytes,
           effects: Sequence[Effect]) -> Fenced:
        entry = _encoder.encode(Entry(int(time.time() * 1000), list(effects))) if effects else b""
        return cls(processing, keys.outbox(queue), raw, tuple(effects), entry)

    @property
    def call(self) -> ScriptCall:
        """The ``fence.lua`` call."""
        return ScriptCall("fence", [self.processing, self.outbox], [self.raw, self.entry])


async def apply(client: aioredis.Redis, effects: Sequence[Effect]) -> None:
    """Do the effects: the plain writes in one pipeline (redis-py sends each node its
    share; a key's writes keep their order), then the publishes and record drops, which a
    cluster pipeline cannot carry, all at once."""
    async with client.pipeline(transaction=False) as pipe:
        for effect in effects:
            if isinstance(effect, Store):
                pipe.set(effect.key, effect.value, ex=effect.ttl_s)
            elif isinstance(effect, Push):
                (pipe.rpush if effect.consuming_end else pipe.lpush)(effect.key, effect.value)
            elif isinstance(effect, Park):
                pipe.zadd(effect.key, {effect.value: effect.due_ms})
            elif isinstance(effect, Count):
                pipe.hincrby(effect.key, effect.field, effect.by)
            elif isinstance(effect, Succeeded):
                pipe.hset(effect.key, mapping={
                    "state": "succeeded", "id": effect.task_id, "result": effect.result})
                pipe.expire(effect.key, effect.ttl_s)
        await pipe.execute()
    await asyncio.gather(*(
        client.publish(e.key, e.value) if isinstance(e, Store)
        else runner.run(client, ScriptCall("record_drop", [e.key], [e.task_id]))
        for e in effects if isinstance(e, Store | DropRecord)))


async def settle_all(client: aioredis.Redis, batch: Sequence[Fenced]) -> list[Any]:
    """Settle a batch: every fence at once, then the effects of those that landed in one
    :func:`apply`, then their entries cleared in one pipeline. Each fence's reply (1
    landed, 0 not this worker's), or the error it raised, in order. Effects that fail
    are left to the sweep (logged): their settles have landed."""
    replies = list(await asyncio.gather(*(runner.run(client, f.call) for f in batch),
                                        return_exceptions=True))
    landed = [f for f, reply in zip(batch, replies, strict=True)
              if f.effects and not isinstance(reply, BaseException) and reply == 1]
    if landed:
        try:
            await apply(client, [effect for f in landed for effect in f.effects])
            async with client.pipeline(transaction=False) as pipe:
                for f in landed:
                    pipe.lrem(f.outbox, 1, f.entry)  # type: ignore[arg-type]
                await pipe.execute()
        except Exception as exc:  # whatever it was, the sweep applies them later
            log.warning("the effects of %d settle(s) were not all applied (%s); the outbox "
                        "sweep will finish them", len(landed), exc)
    return replies


async def sweep(client: aioredis.Redis, queue: str, *, now_ms: int | None = None) -> int:
    """Apply and clear the outbox entries of ``queue`` older than :data:`SWEEP_AFTER_MS`
    (their settler stopped before applying them). Returns how many were applied.

    An entry that cannot be read (hostile or corrupt bytes) is logged with its bytes and
    removed: nothing can apply it, and left in place it would be met on every sweep."""
    name = keys.outbox(queue)
    now = int(time.time() * 1000) if now_ms is None else now_ms
    applied = 0
    for item in reversed(await client.lrange(name, -SWEEP_BATCH, -1)):
        raw = item if isinstance(item, bytes) else item.encode()
        try:
            entry = _decoder.decode(raw)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            log.error("outbox of queue %s: an unreadable entry was removed (%s): %r",
                      queue, exc, raw[:200])
            await client.lrem(name, 1, raw)  # type: ignore[arg-type]
            continue
        if now - entry.at_ms < SWEEP_AFTER_MS:
            break  # the rest are newer still: their settlers are applying them
        await apply(client, entry.effects)
        await client.lrem(name, 1, raw)  # type: ignore[arg-type]
        applied += 1
    if applied:
        log.warning("outbox of queue %s: applied %d settle(s) a stopped worker left",
                    queue, applied)
    return applied
