"""Relier's Redis operations for the worker and the async producer, behind async methods.

Part of the store (:mod:`relier.store`): nothing else builds a key or calls a script.
Scripts run through :mod:`relier.store.runner` (by SHA; reloaded after ``NOSCRIPT``).
"""

from __future__ import annotations

import time
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal

import redis
import redis.asyncio as aioredis

from relier.errors import AdmissionRejectedError, ConfigurationError, ReplicationTimeout
from relier.store import keys, outbox, runner, scripts
from relier.store.cluster import is_cluster
from relier.store.errors import REDIS_ERRORS, is_transient
from relier.store.runner import ScriptCall
from relier.store.scripts import SHAS, ScriptName

__all__ = [
    "PUMP_BATCH", "REDIS_ERRORS", "SHAS", "Broker", "Enqueued", "Outgoing", "ScriptCall",
    "Taken", "as_bytes", "call_sync", "enqueue_call", "enqueue_sync", "is_transient",
    "read_enqueue_reply", "scripts",
]

#: How many due messages one pump call moves at most (bounds the Lua stack and latency).
PUMP_BATCH: Final = 500


@dataclass(frozen=True, slots=True)
class Outgoing:
    """Messages for one queue, enqueued together by one call of ``enqueue.lua``.

    They share a target: the queue's list for ``priority`` now, or its delayed set until
    ``due_ms``. Admission (``depth_limit``, ``memory_limit``) is all-or-nothing for the
    batch. When ``idempotency_records`` is set (one record key per message), each call
    enqueues only if no earlier dispatch of it is pending, running or succeeded.
    """

    queue: str
    #: ``(message bytes, task id)`` per call.
    messages: Sequence[tuple[bytes, str]]
    priority: int | None = None
    due_ms: int | None = None
    depth_limit: int = 0
    memory_limit: float = 0.0
    idempotency_records: Sequence[str] = ()
    idempotency_ttl: int = 0
    #: Replicas that must confirm the batch (``WAIT``) before it counts as pushed; 0: none.
    replicas: int = 0
    replica_timeout_s: float = 1.0


@dataclass(frozen=True, slots=True)
class Taken:
    """A message a fetch moved into this worker's processing list for ``queue``."""

    raw: bytes
    queue: str


@dataclass(frozen=True, slots=True)
class Enqueued:
    """What became of one call of a batch."""

    #: ``new`` (enqueued now), ``pending`` (an earlier dispatch will run it) or ``done``
    #: (an earlier dispatch ran it; ``result`` is its stored result, empty if it kept none).
    status: Literal["new", "pending", "done"]
    task_id: str
    result: bytes = b""


def as_bytes(value: object) -> bytes:
    """A reply as bytes (Relier's clients never decode responses; the stubs allow str)."""
    return value if isinstance(value, bytes) else str(value).encode()


def enqueue_call(batch: Outgoing, *, cluster: bool = False) -> ScriptCall:
    """The ``enqueue.lua`` call for one batch; on a ``cluster`` it touches only the
    queue's slot (the caller registers the queue in the known-queues set itself)."""
    q = batch.queue
    target = keys.queue_list(q, batch.priority) if batch.due_ms is None else keys.delayed(q)
    args: list[str | bytes | int | float] = [
        q, "" if batch.due_ms is None else batch.due_ms, batch.depth_limit,
        batch.memory_limit, batch.idempotency_ttl if batch.idempotency_records else 0,
    ]
    for raw, task_id in batch.messages:
        args += [raw, task_id]
    return ScriptCall(
        "enqueue",
        [target, keys.stats(q) if cluster else keys.KNOWN_QUEUES, keys.stats(q),
         *keys.queue_lists(q), keys.delayed(q),
         *batch.idempotency_records],
        args,
    )


def read_enqueue_reply(batch: Outgoing, reply: list[Any]) -> list[Enqueued]:
    """Each call's outcome; raises ``AdmissionRejectedError`` when the batch was refused."""
    if as_bytes(reply[0]) == b"rejected":
        depth, limit, retry_after_ms, why = reply[1:5]
        raise AdmissionRejectedError(
            batch.queue, int(depth), int(limit), int(retry_after_ms) / 1000,
            reason=as_bytes(why).decode(),
        )
    return [
        Enqueued(as_bytes(reply[i]).decode(), as_bytes(reply[i + 1]).decode(),  # type: ignore[arg-type]
                 as_bytes(reply[i + 2]))
        for i in range(1, len(reply), 3)
    ]


#: Queues each client has added to the known-queues set itself (on a cluster, where the
#: enqueue script cannot: the set is in another slot). It is an index nothing removes
#: from, so once per queue and client is enough, not once per push.
_registered: weakref.WeakKeyDictionary[object, set[str]] = weakref.WeakKeyDictionary()


def register_queue_sync(client: redis.Redis, queue: str) -> None:
    """Add ``queue`` to the known-queues set, unless this client already did."""
    seen = _registered.setdefault(client, set())
    if queue not in seen:
        client.sadd(keys.KNOWN_QUEUES, queue)
        seen.add(queue)


async def register_queue(client: aioredis.Redis, queue: str) -> None:
    """:func:`register_queue_sync` from async code."""
    seen = _registered.setdefault(client, set())
    if queue not in seen:
        await client.sadd(keys.KNOWN_QUEUES, queue)
        seen.add(queue)


def enqueue_sync(client: redis.Redis, batch: Outgoing) -> list[Enqueued]:
    """Enqueue a batch on a blocking client; see :class:`Outgoing`."""
    cluster = is_cluster(client)
    if cluster:
        # Registered first: a queue holding messages is always one `inspect` can find.
        register_queue_sync(client, batch.queue)
    call = enqueue_call(batch, cluster=cluster)
    if not batch.replicas:
        return read_enqueue_reply(batch, runner.run_sync(client, call))
    _replicas_possible(cluster)
    reply, confirmed = runner.run_replicated_sync(
        client, call, batch.replicas, int(batch.replica_timeout_s * 1000))
    return _confirmed(batch, read_enqueue_reply(batch, reply), confirmed)


def _replicas_possible(cluster: bool) -> None:
    if cluster:
        raise ConfigurationError("replica_acks is not supported on a Redis Cluster (WAIT "
                                 "answers for one node's connection); set it to 0")


def _confirmed(batch: Outgoing, enqueued: list[Enqueued], confirmed: int) -> list[Enqueued]:
    """``enqueued``, or ``ReplicationTimeout`` when too few replicas confirmed what this
    batch wrote (calls answered from an earlier dispatch wrote nothing)."""
    written = [e.task_id for e in enqueued if e.status == "new"]
    if written and confirmed < batch.replicas:
        raise ReplicationTimeout(written, batch.replicas, confirmed, batch.replica_timeout_s)
    return enqueued


def call_sync(client: redis.Redis, call: ScriptCall) -> Any:
    """Run one script on a blocking client (see :func:`relier.store.runner.run_sync`)."""
    return runner.run_sync(client, call)


class Broker:
    """Async access to queues, processing lists, the delayed set, the DLQ and results."""

    def __init__(self, client: aioredis.Redis) -> None:
        self.client = client
        #: On a cluster every call touches one queue's slot (see relier.store.cluster).
        self.cluster = is_cluster(client)

    async def aclose(self) -> None:
        await self.client.aclose()

    # -- scripts ---------------------------------------------------------------------

    async def load_scripts(self) -> None:
        """Load every script into the server's cache (again, after a restart)."""
        await runner.load(self.client)

    async def call(self, name: ScriptName, keys_: Sequence[str], args: Sequence[Any]) -> Any:
        """Run one script by SHA, loading it first if the server has forgotten it."""
        return await runner.run(self.client, ScriptCall(name, keys_, args))

    async def call_many(self, calls: Sequence[ScriptCall]) -> list[Any]:
        """Run many script calls in one round trip; results (or errors) in order."""
        return await runner.run_many(self.client, calls)

    # -- producing -------------------------------------------------------------------

    async def enqueue(self, batch: Outgoing) -> list[Enqueued]:
        """Enqueue a batch in one round trip; see :class:`Outgoing`."""
        if self.cluster:
            await register_queue(self.client, batch.queue)  # see enqueue_sync
        call = enqueue_call(batch, cluster=self.cluster)
        if not batch.replicas:
            return read_enqueue_reply(batch, await self.call(call.name, call.keys, call.args))
        _replicas_possible(self.cluster)
        reply, confirmed = await runner.run_replicated(
            self.client, call, batch.replicas, int(batch.replica_timeout_s * 1000))
        return _confirmed(batch, read_enqueue_reply(batch, reply), confirmed)


    # -- consuming -------------------------------------------------------------------

    async def fetch(self, queues: Sequence[str], worker_id: str, want: int) -> list[Taken]:
        """Move up to ``want`` messages into this worker's processing lists, in the order
        kombu would serve them (priority bucket first, then the queues in the order given).
        """
        if self.cluster:
            # One queue per call (each lives on its own slot), in the order given.
            taken: list[Taken] = []
            for queue in queues:
                if len(taken) >= want:
                    break
                taken += await self._fetch([queue], worker_id, want - len(taken))
            return taken
        return await self._fetch(queues, worker_id, want)

    async def _fetch(self, queues: Sequence[str], worker_id: str, want: int) -> list[Taken]:
        key_groups: list[str] = []
        for queue in queues:
            key_groups += [keys.processing(queue, worker_id), keys.stats(queue)]
            key_groups += keys.queue_lists(queue, cluster=self.cluster)
        flat = await self.call("fetch", key_groups, [want])
        return [Taken(as_bytes(flat[i]), queues[int(flat[i + 1])])
                for i in range(0, len(flat), 2)]

    async def block_fetch(
        self, queue: str, worker_id: str, timeout_s: int
    ) -> bytes | None:
        """Wait up to ``timeout_s`` for a message on the queue's main list.

        The message moves straight into the processing list (never only in memory);
        :meth:`claim` then counts it in the queue's drain rate.
        """
        raw = await self.client.blmove(
            keys.queue_list(queue), keys.processing(queue, worker_id), timeout_s, "RIGHT", "LEFT"
        )
        return None if raw is None else as_bytes(raw)

    async def sweep_outbox(self, queue: str) -> int:
        """On a cluster, apply what settles of ``queue`` left undone when their worker
        stopped (:func:`relier.store.outbox.sweep`); nothing to do on one server."""
        return await outbox.sweep(self.client, queue) if self.cluster else 0

    async def claim(self, queue: str) -> None:
        """Count a message :meth:`block_fetch` took (the drain rate admission reads)."""
        await self.call("claim", [keys.stats(queue)], [])

    async def requeue_all(self, queue: str, worker_id: str) -> int:
        """Give back everything this worker holds for ``queue`` (graceful shutdown)."""
        call = self.requeue_call(queue, worker_id, cluster=self.cluster)
        return int(await self.call(call.name, call.keys, call.args))

    @staticmethod
    def requeue_call(queue: str, worker_id: str, *, cluster: bool = False) -> ScriptCall:
        """The ``requeue.lua`` call that gives back everything a worker holds for ``queue``."""
        return ScriptCall("requeue", [keys.processing(queue, worker_id),
                                      *keys.queue_lists(queue, cluster=cluster)], [])

    async def processing_lists(
        self, queues: Sequence[str], worker_id: str
    ) -> dict[str, list[bytes]]:
        """What this worker's processing lists hold, per queue, in one round trip."""
        async with self.client.pipeline(transaction=False) as pipe:
            for queue in queues:
                pipe.lrange(keys.processing(queue, worker_id), 0, -1)
            found = await pipe.execute()
        return {q: [as_bytes(m) for m in held] for q, held in zip(queues, found, strict=True)}

    async def reclaim(self, queue: str, worker_id: str, raw: bytes) -> bool:
        """Give back one message this worker holds but does not run; False if gone."""
        return bool(await self.call(
            "reclaim", [keys.processing(queue, worker_id),
                        *keys.queue_lists(queue, cluster=self.cluster)], [raw]))

    async def pump(self, queue: str) -> int:
        """Move due messages from the delayed set into the queue; returns how many."""
        now_ms = int(time.time() * 1000)
        return int(
            await self.call(
                "pump", [keys.delayed(queue), *keys.queue_lists(queue, cluster=self.cluster)],
                [now_ms, PUMP_BATCH]
            )
        )

    async def run(self, call: ScriptCall) -> Any:
        """Run one prepared script call."""
        return await runner.run(self.client, call)
