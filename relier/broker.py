"""Relier's Redis operations, each one atomic, behind plain async methods.

The worker and the async producer talk to Redis only through :class:`Broker`; nothing
else builds a key or calls a script. Scripts are called by SHA. A pipelined batch that
meets ``NOSCRIPT`` (Redis restarted or failed over and lost its script cache) loads the
scripts again and re-sends only the calls that did not run.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal

import redis
import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, OutOfMemoryError, ReadOnlyError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from relier.errors import AdmissionRejectedError
from relier.protocol import keys, scripts
from relier.protocol.message import decode_json
from relier.protocol.scripts import ScriptName

#: Errors after which a worker's Redis call is simply tried again later, with backoff:
#: the server is unreachable, or it refused (out of memory, a read-only replica after a
#: failover, failing persistence, still loading). A loop that lets one of these escape
#: would take every worker down at once, and count a resurrection against every task
#: they held.
REDIS_ERRORS: Final = (RedisConnectionError, RedisTimeoutError, OSError, ResponseError)
#: Error replies that mean "not now" rather than "this call is wrong".
_TRANSIENT_REPLIES: Final = (
    "OOM", "READONLY", "MISCONF", "NOREPLICAS", "BUSY", "LOADING", "TRYAGAIN", "MASTERDOWN",
    "CLUSTERDOWN",
)

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


@dataclass(frozen=True, slots=True)
class Enqueued:
    """What became of one call of a batch."""

    #: ``new`` (enqueued now), ``pending`` (an earlier dispatch will run it) or ``done``
    #: (an earlier dispatch ran it; ``result`` is its stored result, empty if it kept none).
    status: Literal["new", "pending", "done"]
    task_id: str
    result: bytes = b""


@dataclass(frozen=True, slots=True)
class ScriptCall:
    name: ScriptName
    keys: Sequence[str]
    args: Sequence[str | bytes | int | float]


def _sha(name: ScriptName) -> str:
    return hashlib.sha1(scripts.source(name).encode()).hexdigest()


SHAS: Final[dict[ScriptName, str]] = {name: _sha(name) for name in scripts.SCRIPT_NAMES}


def as_bytes(value: object) -> bytes:
    """A reply as bytes (Relier's clients never decode responses; the stubs allow str)."""
    return value if isinstance(value, bytes) else str(value).encode()


def is_transient(reply: object) -> bool:
    """An error reply worth sending again later (see ``_TRANSIENT_REPLIES``)."""
    # redis-py strips the code from the replies it has a class for.
    return isinstance(reply, OutOfMemoryError | ReadOnlyError) or (
        isinstance(reply, ResponseError) and str(reply).startswith(_TRANSIENT_REPLIES))


def _is_noscript(value: object) -> bool:
    return isinstance(value, NoScriptError) or (
        isinstance(value, ResponseError) and str(value).startswith("NOSCRIPT")
    )


def enqueue_call(batch: Outgoing) -> ScriptCall:
    """The ``enqueue.lua`` call for one batch."""
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
        [target, keys.KNOWN_QUEUES, keys.stats(q), *keys.queue_lists(q), keys.delayed(q),
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


def read_begin_reply(reply: Any) -> Enqueued | None:
    """Before an idempotent run: ``done`` (an earlier run succeeded; ack without running),
    ``pending`` (another delivery of the call is running now), or None: run it."""
    if not isinstance(reply, list):
        return None  # the script could not run: at least once means running it
    status = as_bytes(reply[0])
    if status == b"done":
        return Enqueued("done", as_bytes(reply[1]).decode(), as_bytes(reply[2]))
    if status == b"busy":
        return Enqueued("pending", as_bytes(reply[1]).decode())
    return None


def call_sync(client: redis.Redis, call: ScriptCall) -> Any:
    """Run one script by SHA on a blocking client, loading it if the server forgot it."""
    try:
        return client.evalsha(SHAS[call.name], len(call.keys), *call.keys, *call.args)
    except NoScriptError:
        client.script_load(scripts.source(call.name))
        return client.evalsha(SHAS[call.name], len(call.keys), *call.keys, *call.args)


class Broker:
    """Async access to queues, processing lists, the delayed set, the DLQ and results."""

    def __init__(self, client: aioredis.Redis) -> None:
        self.client = client

    async def aclose(self) -> None:
        await self.client.aclose()

    # -- scripts ---------------------------------------------------------------------

    async def load_scripts(self) -> None:
        """Load every script into the server's cache (again, after a restart)."""
        async with self.client.pipeline(transaction=False) as pipe:
            for name in scripts.SCRIPT_NAMES:
                pipe.script_load(scripts.source(name))
            await pipe.execute()

    async def call(self, name: ScriptName, keys_: Sequence[str], args: Sequence[Any]) -> Any:
        """Run one script by SHA, loading it first if the server has forgotten it."""
        try:
            return await self.client.evalsha(SHAS[name], len(keys_), *keys_, *args)
        except NoScriptError:
            await self.load_scripts()
            return await self.client.evalsha(SHAS[name], len(keys_), *keys_, *args)

    async def call_many(self, calls: Sequence[ScriptCall]) -> list[Any]:
        """Run many script calls in one round trip; results (or errors) in order."""
        results = await self._pipeline(calls)
        retry = [i for i, value in enumerate(results) if _is_noscript(value)]
        if retry:
            await self.load_scripts()
            again = await self._pipeline([calls[i] for i in retry])
            for i, value in zip(retry, again, strict=True):
                results[i] = value
        return results

    async def _pipeline(self, calls: Sequence[ScriptCall]) -> list[Any]:
        async with self.client.pipeline(transaction=False) as pipe:
            for c in calls:
                pipe.evalsha(SHAS[c.name], len(c.keys), *c.keys, *c.args)
            return list(await pipe.execute(raise_on_error=False))

    # -- producing -------------------------------------------------------------------

    async def enqueue(self, batch: Outgoing) -> list[Enqueued]:
        """Enqueue a batch in one round trip; see :class:`Outgoing`."""
        call = enqueue_call(batch)
        return read_enqueue_reply(batch, await self.call(call.name, call.keys, call.args))


    # -- consuming -------------------------------------------------------------------

    async def fetch(
        self, queues: Sequence[str], worker_id: str, want: int
    ) -> list[tuple[bytes, int, str]]:
        """Move up to ``want`` messages into this worker's processing lists.

        Returns ``(message, fencing token, queue)`` triples in the order kombu would
        serve them (priority bucket first, then the queues in the order given).
        """
        key_groups: list[str] = []
        for queue in queues:
            key_groups += [keys.processing(queue, worker_id), keys.fences(queue), keys.stats(queue)]
            key_groups += keys.queue_lists(queue)
        flat = await self.call("fetch", key_groups, [want])
        return [
            (flat[i], int(flat[i + 1]), queues[int(flat[i + 2])]) for i in range(0, len(flat), 3)
        ]

    async def block_fetch(
        self, queue: str, worker_id: str, timeout_s: int
    ) -> bytes | None:
        """Wait up to ``timeout_s`` for a message on the queue's main list.

        The message moves straight into the processing list (never only in memory);
        :meth:`claim` then gives it its fencing token.
        """
        raw = await self.client.blmove(
            keys.queue_list(queue), keys.processing(queue, worker_id), timeout_s, "RIGHT", "LEFT"
        )
        return None if raw is None else as_bytes(raw)

    async def claim(self, queue: str, raw: bytes) -> int:
        task_id = ""
        try:
            envelope = decode_json(raw)
            if isinstance(envelope, dict) and isinstance(envelope.get("headers"), dict):
                found = envelope["headers"].get("id")
                task_id = found if isinstance(found, str) else ""
        except Exception:  # a malformed message still gets a token; the executor rejects it
            task_id = ""
        return int(await self.call("claim", [keys.fences(queue), keys.stats(queue)], [task_id]))

    async def requeue_all(self, queue: str, worker_id: str) -> int:
        """Give back everything this worker holds for ``queue`` (graceful shutdown)."""
        call = self.requeue_call(queue, worker_id)
        return int(await self.call(call.name, call.keys, call.args))

    @staticmethod
    def requeue_call(queue: str, worker_id: str) -> ScriptCall:
        """The ``requeue.lua`` call that gives back everything a worker holds for ``queue``."""
        return ScriptCall(
            "requeue", [keys.processing(queue, worker_id), keys.fences(queue),
                        *keys.queue_lists(queue)], [])

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
            "reclaim", [keys.processing(queue, worker_id), keys.fences(queue),
                        *keys.queue_lists(queue)], [raw]))

    async def pump(self, queue: str) -> int:
        """Move due messages from the delayed set into the queue; returns how many."""
        now_ms = int(time.time() * 1000)
        return int(
            await self.call(
                "pump", [keys.delayed(queue), *keys.queue_lists(queue)], [now_ms, PUMP_BATCH]
            )
        )

    # -- settling (built here so that callers never assemble keys) -------------------------

    @staticmethod
    def idempotent_begin_call(record: str, task_id: str, ttl: int) -> ScriptCall:
        """Before running an idempotent call; read the reply with :func:`read_begin_reply`."""
        return ScriptCall("idempotent_begin", [record], [task_id, ttl])

    @staticmethod
    def ack_call(
        queue: str, worker_id: str, raw: bytes, token: int, fence_id: str, task_id: str,
        result: bytes, result_ttl: int, idempotency: tuple[str, int] | None = None,
    ) -> ScriptCall:
        """``idempotency``: the call's record key and TTL, for an idempotent call."""
        record, record_ttl = idempotency or ("", 0)
        return ScriptCall(
            "ack",
            [keys.processing(queue, worker_id), keys.fences(queue), keys.result(task_id),
             *([record] if record else [])],
            [raw, str(token), fence_id, result, result_ttl, record_ttl],
        )

    @staticmethod
    def dead_letter_call(
        queue: str, worker_id: str, raw: bytes, token: int, fence_id: str, task_id: str,
        entry: bytes, result: bytes, result_ttl: int, dlq_queue: str, reason: str,
        idempotency_record: str | None = None,
    ) -> ScriptCall:
        return ScriptCall(
            "dead_letter",
            [keys.processing(queue, worker_id), keys.fences(queue),
             keys.dead_letters(dlq_queue), keys.result(task_id or "unknown"),
             keys.dlq_reasons(dlq_queue),
             *([idempotency_record] if idempotency_record else [])],
            [raw, str(token), fence_id, entry, result, result_ttl, reason],
        )

    @staticmethod
    def schedule_call(
        queue: str, worker_id: str, raw: bytes, token: int, fence_id: str,
        new_raw: bytes, due_ms: int, target_queue: str,
        task_id: str = "", result: bytes = b"", result_ttl: int = 0, *, deferred: bool = False,
    ) -> ScriptCall:
        """Park a delivery in ``target_queue``'s delayed set (its deferred set when
        ``deferred``); ``result`` (a retry's ``RETRY`` state) is stored for ``task_id``
        when not empty."""
        parked = keys.deferred(target_queue) if deferred else keys.delayed(target_queue)
        return ScriptCall(
            "schedule",
            [keys.processing(queue, worker_id), keys.fences(queue), parked,
             keys.result(task_id or "unknown")],
            [raw, str(token), fence_id, new_raw, due_ms, result, result_ttl],
        )

    @staticmethod
    def rate_limit_call(task_name: str, interval_us: float, burst: int) -> ScriptCall:
        """Reserve one token of a task's rate limit; the reply is the wait in µs."""
        return ScriptCall("rate_limit", [keys.rate_limit(task_name)], [interval_us, burst])

    # -- named locks (relier/lock.py) ------------------------------------------------------

    @staticmethod
    def lock_acquire_call(name: str, value: str, ttl_ms: int) -> ScriptCall:
        """Take the lock if free; it then holds ``"<holder> <new fencing token>"``."""
        return ScriptCall("lock_acquire", [keys.lock(name), keys.lock_fence(name)],
                          [value, ttl_ms])

    @staticmethod
    def lock_release_call(name: str, value: str) -> ScriptCall:
        return ScriptCall("lock_release", [keys.lock(name)], [value])

    @staticmethod
    def lock_extend_call(name: str, value: str, ttl_ms: int) -> ScriptCall:
        return ScriptCall("lock_extend", [keys.lock(name)], [value, ttl_ms])

    @staticmethod
    def lock_channel(name: str) -> str:
        """Where a lock's release is announced (its own key name)."""
        return keys.lock(name)

    async def run(self, call: ScriptCall) -> Any:
        """Run one prepared script call."""
        return await self.call(call.name, call.keys, call.args)

    # -- results ---------------------------------------------------------------------

    async def get_result(self, task_id: str) -> bytes | None:
        value = await self.client.get(keys.result(task_id))
        return None if value is None else as_bytes(value)
