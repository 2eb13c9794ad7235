"""A taken message (``Delivery``) and the batcher that settles deliveries (``Settler``).

A delivery knows how to end itself: ack (with its result), dead-letter, or go back to
the delayed set. Each of those is one fenced Lua script. The settler sends a settle at
once when nothing is in flight, and everything that piled up during a round trip in the
next one: a lone task pays no waiting, a busy worker pays one round trip per batch.

A settle that fails on a connection error is sent again until it lands: the scripts are
fenced, so a settle that did land before its reply was lost refuses the repeat.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

import anyio
import msgspec
from redis.exceptions import ResponseError

from relier.broker import (
    REDIS_ERRORS,
    Broker,
    Enqueued,
    ScriptCall,
    is_transient,
    read_begin_reply,
)
from relier.canvas_store import settle_call
from relier.protocol import canvas, keys
from relier.protocol.canvas import FollowUps
from relier.protocol.message import TaskMessage

log = logging.getLogger("relier.worker")

#: Most settles in one pipelined round trip.
MAX_BATCH: Final = 256
#: Longest pause between attempts while Redis is unreachable.
MAX_BACKOFF_S: Final = 5.0
#: Record TTL for an idempotent message that does not carry one (a hand-built message).
DEFAULT_IDEMPOTENCY_TTL_S: Final = 86400


class _Pending:
    __slots__ = ("call", "done", "result")

    def __init__(self, call: ScriptCall) -> None:
        self.call = call
        self.done = anyio.Event()
        self.result: Any = None


class Settler:
    """Collects settle calls and sends them in batches."""

    def __init__(self, broker: Broker) -> None:
        self._broker = broker
        self._queue: list[_Pending] = []
        self._wakeup = anyio.Event()

    async def settle(self, call: ScriptCall) -> Any:
        """Send one settle with the next batch; returns the script's reply."""
        pending = _Pending(call)
        self._queue.append(pending)
        self._wakeup.set()
        await pending.done.wait()
        return pending.result

    async def run(self) -> None:
        while True:
            await self._wakeup.wait()
            self._wakeup = anyio.Event()
            while self._queue:
                batch, self._queue = self._queue[:MAX_BATCH], self._queue[MAX_BATCH:]
                replies = await self._send(batch)
                for pending, reply in zip(batch, replies, strict=True):
                    pending.result = reply
                    pending.done.set()

    async def _send(self, batch: list[_Pending]) -> list[Any]:
        """Every settle's reply; a settle that cannot land (a script error) replies None.

        Unreachable Redis or a transient refusal (out of memory, read-only...) is waited
        out: the settle scripts are idempotent (a repeat that finds its message gone
        writes nothing), so sending one again is always safe.
        """
        replies: list[Any] = [None] * len(batch)
        todo = list(range(len(batch)))
        delay = 0.1
        while todo:
            try:
                answers = await self._broker.call_many([batch[i].call for i in todo])
            except REDIS_ERRORS as exc:
                answers = [exc] * len(todo)
            again = []
            for i, answer in zip(todo, answers, strict=True):
                if isinstance(answer, BaseException) and (
                        is_transient(answer) or not isinstance(answer, ResponseError)):
                    again.append(i)
                elif isinstance(answer, BaseException):
                    log.error("a settle failed for good (%s); its message stays in this "
                              "worker's processing list until it stops", answer)
                else:
                    replies[i] = answer
            if again:
                log.warning("settling %d task(s) failed (%s); retrying in %.1fs",
                            len(again), answers[todo.index(again[0])], delay)
                await anyio.sleep(delay)
                delay = min(delay * 2, MAX_BACKOFF_S)
            todo = again
        return replies


def fence_id(message: TaskMessage | None) -> str:
    """The id the fetch script fenced the delivery under: the ``id`` header.

    A protocol v1 message keeps its id in the body, which Lua cannot read cheaply (it is
    base64); such deliveries are not fenced.
    """
    if message is None:
        return ""
    value = message.headers.get("id")
    return value if isinstance(value, str) else ""


def idempotency_record(message: TaskMessage | None) -> str | None:
    """The key of the message's idempotency record, if it is an idempotent call."""
    key = message.idempotency_key if message is not None else None
    return keys.idempotency(message.task, key) if message is not None and key else None


class _EntrySummary(msgspec.Struct):
    reason: str
    error: str = ""


_summary_decoder: Final = msgspec.json.Decoder(_EntrySummary)


@dataclass(frozen=True, slots=True)
class Settled:
    """How a delivery ended, for its outcome log line and metrics.

    ``kind`` is ``ack``, ``dead_letter`` or ``schedule``; ``accepted`` is False when the
    fence refused the settle (a newer delivery owns the task). ``reason`` is the DLQ
    reason, or why a message was scheduled (``deferred``, ``retry``, ...).
    """

    kind: str
    accepted: bool
    message: TaskMessage | None
    reason: str | None = None
    error: str | None = None


@dataclass(slots=True)
class Delivery:
    """One message this worker took, still in its processing list until settled."""

    raw: bytes
    token: int
    #: The queue it was taken from (its processing list and fences live under this name).
    queue: str
    worker_id: str
    settler: Settler
    #: Unix time it was taken, and the monotonic clock then (for its duration).
    taken_at: float = field(default_factory=time.time)
    taken_mono: float = field(default_factory=time.monotonic)
    #: How it ended; None while running (and if it never settled: shutdown, lost settle).
    settled: Settled | None = None
    #: Called once the executor is done with it, however it ended (the fetcher's count of
    #: the messages it hands out).
    on_done: Callable[[], None] | None = None

    async def ack(
        self, message: TaskMessage, result: bytes, result_ttl: int, *, why: str = "success",
        follow_ups: FollowUps = canvas.NONE,
    ) -> bool:
        """Done: store the result (``b""`` for none) and drop the message.

        False when a newer delivery of the task exists; nothing was written (or sent) then.
        ``why`` names the outcome (``success``, or ``already_done`` for an idempotent call
        whose earlier run succeeded). ``follow_ups`` (the next chain step, callbacks, the
        chord part) are sent by the same script, only if the settle lands.
        """
        record = idempotency_record(message)
        call = settle_call(Broker.ack_call(
            self.queue, self.worker_id, self.raw, self.token, fence_id(message), message.id,
            result, result_ttl, (record, message.idempotency_ttl) if record else None,
        ), 7, follow_ups, result_ttl)
        accepted = bool(await self.settler.settle(call))
        self.settled = Settled("ack", accepted, message, why)
        return accepted

    async def dead_letter(
        self, message: TaskMessage | None, entry: bytes, result: bytes, result_ttl: int,
        origin_queue: str, follow_ups: FollowUps = canvas.NONE,
    ) -> bool:
        """Will not run again: record the DLQ entry (under the task's own queue), and send
        ``follow_ups`` (errbacks, the chain's FAILURE, the chord part) in the same step."""
        summary = _summary_decoder.decode(entry)
        call = settle_call(Broker.dead_letter_call(
            self.queue, self.worker_id, self.raw, self.token, fence_id(message),
            message.id if message else "", entry, result, result_ttl, origin_queue,
            summary.reason, idempotency_record(message),
        ), 8, follow_ups, result_ttl)
        accepted = bool(await self.settler.settle(call))
        self.settled = Settled("dead_letter", accepted, message, summary.reason, summary.error)
        return accepted

    async def begin_idempotent(self, message: TaskMessage) -> Enqueued | None:
        """For an idempotent call, before running it: ``done`` with the result an earlier
        run stored (``b""`` when it kept none), ``pending`` while another delivery of the
        call runs, or None: it may run, and its record now says running under this id."""
        record = idempotency_record(message)
        if record is None:
            return None
        # The record must outlive the run, or a new dispatch could start a second one.
        ttl = (message.idempotency_ttl or DEFAULT_IDEMPOTENCY_TTL_S) + math.ceil(
            message.hard_timeout or 0)
        reply = await self.settler.settle(Broker.idempotent_begin_call(record, message.id, ttl))
        return read_begin_reply(reply)

    async def schedule(
        self, message: TaskMessage, new_raw: bytes, due_s: float,
        result: bytes = b"", result_ttl: int = 0, *, why: str = "deferred",
    ) -> bool:
        """Not yet: park the (updated) message in its queue's delayed set until ``due_s``;
        ``result`` (a retry's ``RETRY`` state) is stored at the same time. ``why`` names
        the outcome in logs and metrics (``deferred``, ``scheduled``, ``retry``, ...)."""
        call = Broker.schedule_call(
            self.queue, self.worker_id, self.raw, self.token, fence_id(message),
            new_raw, math.ceil(due_s * 1000), message.origin_queue,
            message.id, result, result_ttl,
        )
        accepted = bool(await self.settler.settle(call))
        self.settled = Settled("schedule", accepted, message, why)
        return accepted

    async def defer(self, message: TaskMessage, new_raw: bytes, until_s: float) -> bool:
        """Not on this worker: park the (updated) message in its queue's deferred set
        until ``until_s`` (its ``defer_window`` ends), where only a worker that can run it
        takes it out sooner (deferred.py)."""
        call = Broker.schedule_call(
            self.queue, self.worker_id, self.raw, self.token, fence_id(message),
            new_raw, math.ceil(until_s * 1000), message.origin_queue, message.id,
            deferred=True,
        )
        accepted = bool(await self.settler.settle(call))
        self.settled = Settled("schedule", accepted, message, "deferred")
        return accepted
