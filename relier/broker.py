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
from typing import Any, Final

import redis.asyncio as aioredis
from redis.exceptions import NoScriptError, ResponseError

from relier.protocol import keys, scripts
from relier.protocol.message import decode_json
from relier.protocol.scripts import ScriptName

#: How many due messages one pump call moves at most (bounds the Lua stack and latency).
PUMP_BATCH: Final = 500


@dataclass(frozen=True, slots=True)
class Outgoing:
    """A message ready to enqueue: onto its list now, or into the delayed set until due."""

    queue: str
    raw: bytes
    priority: int | None = None
    due_ms: int | None = None


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


def _is_noscript(value: object) -> bool:
    return isinstance(value, NoScriptError) or (
        isinstance(value, ResponseError) and str(value).startswith("NOSCRIPT")
    )


def stage_enqueue(pipe: Any, messages: Sequence[Outgoing], announced: set[str]) -> None:
    """Queue the commands that enqueue ``messages`` on a (sync or async) pipeline."""
    for queue in {m.queue for m in messages} - announced:
        pipe.sadd(keys.KNOWN_QUEUES, queue)
    for m in messages:
        if m.due_ms is None:
            pipe.lpush(keys.queue_list(m.queue, m.priority), m.raw)
        else:
            pipe.zadd(keys.delayed(m.queue), {m.raw: m.due_ms})


class Broker:
    """Async access to queues, processing lists, the delayed set, the DLQ and results."""

    def __init__(self, client: aioredis.Redis) -> None:
        self.client = client
        self._announced: set[str] = set()

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

    async def enqueue(self, messages: Sequence[Outgoing]) -> None:
        """LPUSH (or ZADD, for later) every message in one pipelined round trip."""
        async with self.client.pipeline(transaction=False) as pipe:
            stage_enqueue(pipe, messages, self._announced)
            await pipe.execute()
        self._announced.update(m.queue for m in messages)

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
            key_groups += [keys.processing(queue, worker_id), keys.fences(queue)]
            key_groups += keys.queue_lists(queue)
        flat = await self.call("fetch", key_groups, [want])
        return [
            (flat[i], int(flat[i + 1]), queues[int(flat[i + 2])]) for i in range(0, len(flat), 3)
        ]

    async def block_fetch(
        self, queue: str, worker_id: str, timeout_s: int
    ) -> tuple[bytes, int] | None:
        """Wait up to ``timeout_s`` for a message on the queue's main list.

        The message moves straight into the processing list (never only in memory);
        a second call then gives it its fencing token.
        """
        raw = await self.client.blmove(
            keys.queue_list(queue), keys.processing(queue, worker_id), timeout_s, "RIGHT", "LEFT"
        )
        if raw is None:
            return None
        return as_bytes(raw), await self.claim(queue, as_bytes(raw))

    async def claim(self, queue: str, raw: bytes) -> int:
        task_id = ""
        try:
            envelope = decode_json(raw)
            if isinstance(envelope, dict) and isinstance(envelope.get("headers"), dict):
                found = envelope["headers"].get("id")
                task_id = found if isinstance(found, str) else ""
        except Exception:  # a malformed message still gets a token; the executor rejects it
            task_id = ""
        return int(await self.call("claim", [keys.fences(queue)], [task_id]))

    async def requeue_all(self, queue: str, worker_id: str) -> int:
        """Give back everything this worker holds for ``queue`` (graceful shutdown)."""
        lists = keys.queue_lists(queue)
        return int(
            await self.call(
                "requeue", [keys.processing(queue, worker_id), keys.fences(queue), *lists], []
            )
        )

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
    def ack_call(
        queue: str, worker_id: str, raw: bytes, token: int, fence_id: str, task_id: str,
        result: bytes, result_ttl: int,
    ) -> ScriptCall:
        return ScriptCall(
            "ack",
            [keys.processing(queue, worker_id), keys.fences(queue), keys.result(task_id)],
            [raw, str(token), fence_id, result, result_ttl],
        )

    @staticmethod
    def dead_letter_call(
        queue: str, worker_id: str, raw: bytes, token: int, fence_id: str, task_id: str,
        entry: bytes, result: bytes, result_ttl: int, dlq_queue: str,
    ) -> ScriptCall:
        return ScriptCall(
            "dead_letter",
            [keys.processing(queue, worker_id), keys.fences(queue),
             keys.dead_letters(dlq_queue), keys.result(task_id or "unknown")],
            [raw, str(token), fence_id, entry, result, result_ttl],
        )

    @staticmethod
    def schedule_call(
        queue: str, worker_id: str, raw: bytes, token: int, fence_id: str,
        new_raw: bytes, due_ms: int, target_queue: str,
    ) -> ScriptCall:
        return ScriptCall(
            "schedule",
            [keys.processing(queue, worker_id), keys.fences(queue), keys.delayed(target_queue)],
            [raw, str(token), fence_id, new_raw, due_ms],
        )

    # -- results ---------------------------------------------------------------------

    async def get_result(self, task_id: str) -> bytes | None:
        value = await self.client.get(keys.result(task_id))
        return None if value is None else as_bytes(value)
