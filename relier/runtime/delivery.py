"""A taken message (``Delivery``) and the batcher that settles deliveries (``Settler``).

A delivery knows how to end itself: ack (with its result), dead-letter, or go back to
the delayed set. Each of those is one fenced Lua script. The settler sends a settle at
once when nothing is in flight, and everything that piled up during a round trip in the
next one: a lone task pays no waiting, a busy worker pays one round trip per batch.

A settle that fails on a connection error is sent again until it lands: the scripts are
fenced (each first takes its own copy of the message out of the worker's processing
list), so a settle that did land before its reply was lost refuses the repeat.

A delivery's settle is awaited even when its run is being cancelled (shutdown), so that
a task that finished is recorded as such, and for at most :data:`SETTLE_BOUND_S` in
all: past that it replies :class:`SettleFailed` and the message stays in the processing
list (given back at shutdown, or recovered by Phoenix). Both are the settler's, not a
cancel scope and a timer per delivery: the shield is entered only when a cancellation
arrives, and one loop times out the settles that are late.

The delivery carries its message decoded once (:meth:`Delivery.decode`, by the
executor before anything else reads it); the recorder and the settles use that copy.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final, Generic, TypeVar

import anyio
import msgspec

from relier.errors import PayloadError
from relier.protocol import canvas
from relier.protocol import message as wire
from relier.protocol.canvas import FollowUps
from relier.protocol.message import TaskMessage
from relier.store import ops, settles
from relier.store.broker import Broker
from relier.store.errors import REDIS_ERRORS, is_transient
from relier.store.errors import ErrorReply as ResponseError
from relier.store.runner import Op
from relier.store.settles import Earlier, Held, Record

log = logging.getLogger("relier.worker")

#: Most settles in one pipelined round trip.
MAX_BATCH: Final = 256
#: Longest pause between attempts while Redis is unreachable.
MAX_BACKOFF_S: Final = 5.0
#: Record TTL for an idempotent message that does not carry one (a hand-built message).
DEFAULT_IDEMPOTENCY_TTL_S: Final = 86400
#: Seconds a delivery waits for its settle, cancelled or not, before it gives up on it
#: (the message then stays in the processing list, where Phoenix finds it).
SETTLE_BOUND_S: Final = 10.0
#: How often the settler looks for settles older than the bound.
LATE_CHECK_S: Final = 0.5


T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class SettleFailed:
    """A call the settler could not land for good: the script's error reply, or a reply
    that did not read as the operation's type. Its message stays in the processing list
    (given back at shutdown, or recovered by Phoenix)."""

    error: str


@dataclass(frozen=True, slots=True)
class SettleLate(SettleFailed):
    """No reply within the settler's bound (Redis unreachable, or shutdown ran out of
    time): the settle may still land later, or not; the delivery counts as not settled."""


class _Pending(Generic[T]):
    __slots__ = ("done", "op", "result", "since", "waiter")

    def __init__(self, op: Op[T]) -> None:
        self.op = op
        self.result: T | SettleFailed = SettleFailed("not sent")
        self.done = False
        # A bare future, not an event: one is made per settle, and an event makes one
        # too, plus its own bookkeeping (the worker runs on asyncio alone: loop.py).
        self.waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.since = time.monotonic()

    def finish(self, result: T | SettleFailed) -> None:
        self.result = result
        self.done = True
        if not self.waiter.done():
            self.waiter.set_result(None)

    async def wait(self) -> None:
        """Until :meth:`finish`. A cancellation of the waiter cancels its future; waiting
        again (shielded) takes a new one."""
        while not self.done:
            if self.waiter.done():
                self.waiter = asyncio.get_running_loop().create_future()
            await self.waiter


class Settler:
    """Collects settle calls and sends them in batches."""

    def __init__(self, broker: Broker, *, bound_s: float = SETTLE_BOUND_S) -> None:
        self._broker = broker
        self._bound_s = bound_s
        self._queue: list[_Pending[Any]] = []
        #: Shielded settles, oldest first, until the late check drops them.
        self._awaited: deque[_Pending[Any]] = deque()
        self._wakeup = anyio.Event()

    async def settle(self, op: Op[T], *, shielded: bool = False) -> T | SettleFailed:
        """Send one call with the next batch; its typed reply, or why it cannot land.

        ``shielded``: a delivery's settle. Its reply is awaited even if the caller is
        being cancelled meanwhile (the cancellation then reaches it at its next await),
        and for at most the settler's bound; past that it replies :class:`SettleFailed`.
        """
        pending = _Pending(op)
        self._queue.append(pending)
        self._wakeup.set()
        if not shielded:
            await pending.wait()
            return pending.result
        awaited = self._awaited
        awaited.append(pending)
        try:
            await pending.wait()
        except anyio.get_cancelled_exc_class():
            # Handed over already: the settle is sent all the same, and its reply says
            # whether the run that finished is recorded. The late check bounds the wait.
            with anyio.CancelScope(shield=True):
                await pending.wait()
        # Settles end about in order: dropping the ended ones at the head here keeps the
        # list to those still waiting (the late check only reads its head).
        while awaited and awaited[0].done:
            awaited.popleft()
        return pending.result

    async def run(self) -> None:
        """Send settles in batches, and time out the late ones, until cancelled."""
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._time_out_late, name="relier late settles")
            await self._send_batches()

    async def _time_out_late(self) -> None:
        while True:
            await anyio.sleep(LATE_CHECK_S)
            self._drop_late(time.monotonic())

    def _drop_late(self, now: float) -> None:
        late = 0
        awaited = self._awaited
        while awaited:
            head = awaited[0]
            if not head.done:
                if now - head.since < self._bound_s:
                    break
                head.finish(SettleLate(f"no reply in {self._bound_s:.0f}s"))
                late += 1
            awaited.popleft()
        if late:
            log.error("%d settle(s) did not complete in %.0fs; Phoenix will recover their "
                      "message(s)", late, self._bound_s)

    async def _send_batches(self) -> None:
        while True:
            await self._wakeup.wait()
            self._wakeup = anyio.Event()
            while self._queue:
                batch, self._queue = self._queue[:MAX_BATCH], self._queue[MAX_BATCH:]
                replies = await self._send(batch)
                for pending, reply in zip(batch, replies, strict=True):
                    pending.finish(reply)

    async def _send(self, batch: list[_Pending[Any]]) -> list[Any]:
        """Every settle's typed reply; one that cannot land (a script error, a reply of
        the wrong shape) replies :class:`SettleFailed`.

        Unreachable Redis or a transient refusal (out of memory, read-only...) is waited
        out: the settle scripts are idempotent (a repeat that finds its message gone
        writes nothing), so sending one again is always safe.
        """
        replies: list[Any] = [SettleFailed("not sent")] * len(batch)
        todo = list(range(len(batch)))
        delay = 0.1
        while todo:
            try:
                answers = await ops.run_all(self._broker.client, [batch[i].op for i in todo])
            except REDIS_ERRORS as exc:
                answers = [exc] * len(todo)
            again = []
            for i, answer in zip(todo, answers, strict=True):
                if isinstance(answer, BaseException) and (
                        is_transient(answer) or not isinstance(answer, ResponseError)):
                    again.append(i)
                else:
                    replies[i] = _read(batch[i].op, answer)
            if again:
                log.warning("settling %d task(s) failed (%s); retrying in %.1fs",
                            len(again), answers[todo.index(again[0])], delay)
                await anyio.sleep(delay)
                delay = min(delay * 2, MAX_BACKOFF_S)
            todo = again
        return replies


def _read(op: Op[T], answer: Any) -> T | SettleFailed:
    """The typed reply, or :class:`SettleFailed` (logged) for an error or a bad reply."""
    if isinstance(answer, BaseException):
        failed = SettleFailed(f"{op.call.name}: {answer}")
    else:
        try:
            return op.read(answer)
        except Exception as exc:  # a reply is hostile bytes too
            failed = SettleFailed(f"{op.call.name} replied {answer!r}: {exc}")
    log.error("a %s call failed for good (%s); its message stays in this worker's "
              "processing list until it stops", op.call.name, failed.error)
    return failed


def idempotency_record(message: TaskMessage | None, taken_from: str) -> Record | None:
    """The message's idempotency record, if it is an idempotent call; ``taken_from`` is
    the queue it was fetched from (its home queue scopes the record on a cluster)."""
    key = message.idempotency_key if message is not None else None
    if message is None or not key:
        return None
    return Record(task=message.task, key=key, ttl_s=message.idempotency_ttl or 0,
                  queue=wire.home_queue(taken_from, message.headers))


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
    #: The queue it was taken from (its processing list lives under this name).
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
    #: The message, decoded once by :meth:`decode`; None before, or if it did not decode.
    message: TaskMessage | None = None
    #: Why it did not decode (kept, so that a second reader does not parse it again).
    decode_error: PayloadError | None = None

    def decode(self, max_bytes: int | None = None) -> TaskMessage:
        """Decode the message once (raises ``PayloadError``, every time, if it cannot be);
        later readers use :attr:`message`."""
        if self.message is not None:
            return self.message
        if self.decode_error is None:
            try:
                self.message = wire.decode(self.raw, max_bytes=max_bytes)
                return self.message
            except PayloadError as exc:
                self.decode_error = exc
        raise self.decode_error

    @property
    def held(self) -> Held:
        """Where this delivery's message sits: what every settle takes out first."""
        return Held(queue=self.queue, worker_id=self.worker_id, raw=self.raw)

    async def _landed(self, op: Op[bool]) -> bool | None:
        """True landed, False refused (or failed for good), None: no reply in time."""
        reply = await self.settler.settle(op, shielded=True)
        return None if isinstance(reply, SettleLate) else reply is True

    def _ended(self, accepted: bool | None, settled: Settled) -> bool:
        # A settle with no reply in time leaves the delivery unsettled ("interrupted"):
        # its message is still this worker's, for the give-back or Phoenix.
        if accepted is not None:
            self.settled = settled
        return bool(accepted)

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
        accepted = await self._landed(settles.ack(
            held=self.held, task_id=message.id, result=result, result_ttl_s=result_ttl,
            record=idempotency_record(message, self.queue), follow_ups=follow_ups))
        return self._ended(accepted, Settled("ack", bool(accepted), message, why))

    async def dead_letter(
        self, message: TaskMessage | None, entry: bytes, result: bytes, result_ttl: int,
        origin_queue: str, follow_ups: FollowUps = canvas.NONE,
    ) -> bool:
        """Will not run again: record the DLQ entry (under the task's own queue), and send
        ``follow_ups`` (errbacks, the chain's FAILURE, the chord part) in the same step."""
        summary = _summary_decoder.decode(entry)
        accepted = await self._landed(settles.dead_letter(
            held=self.held, task_id=message.id if message else "", entry=entry,
            reason=summary.reason, result=result, result_ttl_s=result_ttl,
            dlq_queue=origin_queue, record=idempotency_record(message, self.queue),
            follow_ups=follow_ups))
        return self._ended(accepted, Settled("dead_letter", bool(accepted), message,
                                             summary.reason, summary.error))

    async def begin_idempotent(self, message: TaskMessage) -> Earlier | None:
        """For an idempotent call, before running it: ``done`` with the result an earlier
        run stored (``b""`` when it kept none), ``pending`` while another delivery of the
        call runs, or None: it may run, and its record now says running under this id."""
        record = idempotency_record(message, self.queue)
        if record is None:
            return None
        # The record must outlive the run, or a new dispatch could start a second one.
        ttl = (message.idempotency_ttl or DEFAULT_IDEMPOTENCY_TTL_S) + math.ceil(
            message.hard_timeout or 0)
        reply = await self.settler.settle(settles.idempotent_begin(
            record=Record(task=record.task, key=record.key, ttl_s=ttl, queue=record.queue),
            task_id=message.id))
        # A begin that cannot run: at least once means running the task.
        return None if isinstance(reply, SettleFailed) else reply

    async def schedule(
        self, message: TaskMessage, new_raw: bytes, due_s: float,
        result: bytes = b"", result_ttl: int = 0, *, why: str = "deferred",
    ) -> bool:
        """Not yet: park the (updated) message in its queue's delayed set until ``due_s``;
        ``result`` (a retry's ``RETRY`` state) is stored at the same time. ``why`` names
        the outcome in logs and metrics (``deferred``, ``scheduled``, ``retry``, ...)."""
        accepted = await self._landed(settles.schedule(
            held=self.held, new_raw=new_raw, due_ms=math.ceil(due_s * 1000),
            target_queue=message.origin_queue, task_id=message.id, result=result,
            result_ttl_s=result_ttl))
        return self._ended(accepted, Settled("schedule", bool(accepted), message, why))

    async def defer(self, message: TaskMessage, new_raw: bytes, until_s: float) -> bool:
        """Not on this worker: park the (updated) message in its queue's deferred set
        until ``until_s`` (its ``defer_window`` ends), where only a worker that can run it
        takes it out sooner (deferred.py)."""
        accepted = await self._landed(settles.schedule(
            held=self.held, new_raw=new_raw, due_ms=math.ceil(until_s * 1000),
            target_queue=message.origin_queue, task_id=message.id, deferred=True))
        return self._ended(accepted, Settled("schedule", bool(accepted), message, "deferred"))
