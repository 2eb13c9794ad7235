"""Typed calls of the scripts that end a delivery (ack, dead letter, schedule) and of
the two a run makes just before it starts (idempotency record, rate-limit token).

Each builds an :class:`~relier.store.runner.Op` from keyword arguments and reads its
reply into a typed value; the settler sends them in batches (``runtime/delivery.py``).
A settle's ``bool`` is True when it landed, False when the message was no longer in the
worker's processing list: the one fence that refuses a zombie's write.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Literal

from relier.protocol import canvas
from relier.protocol.canvas import FollowUps
from relier.store import keys
from relier.store.canvas import settle_call
from relier.store.canvas import target as canvas_target
from relier.store.coalesce import PlainAck
from relier.store.outbox import Count, DropRecord, Effect, Fenced, Park, Push, Store, Succeeded
from relier.store.runner import Op, ScriptCall

log = logging.getLogger("relier.store")


@dataclass(frozen=True, slots=True, kw_only=True)
class Held:
    """A message a worker holds: its exact bytes in the processing list of ``queue``."""

    queue: str
    worker_id: str
    raw: bytes

    @property
    def processing(self) -> str:
        return keys.processing(self.queue, self.worker_id)


@dataclass(frozen=True, slots=True, kw_only=True)
class Record:
    """An idempotent call's record: the task, its idempotency key, the record's TTL, and
    the queue the call was pushed to (which scopes it when that queue is hash-tagged)."""

    task: str
    key: str
    ttl_s: int = 0
    queue: str = ""

    @property
    def name(self) -> str:
        return keys.idempotency(self.task, self.key, self.queue)


@dataclass(frozen=True, slots=True)
class Earlier:
    """An earlier delivery of an idempotent call: ``done`` (it succeeded; ``result`` is
    what it stored, ``b""`` for none) or ``pending`` (it is running now)."""

    status: Literal["done", "pending"]
    task_id: str
    result: bytes = b""


def _landed(reply: Any) -> bool:
    return bool(int(reply))


def _as_bytes(value: object) -> bytes:
    return value if isinstance(value, bytes) else str(value).encode()


def fenced_settle(held: Held, effects: list[Effect], follow_ups: FollowUps,
            result_ttl_s: int) -> Fenced:
    """The cluster form of a settle (see relier/store/outbox.py). A chord part is not
    sent: a chord's join spans slots, Relier refuses to send chords to a cluster and Celery
    cannot use one, so only a foreign message can ask for it; that is logged."""
    if follow_ups.chord is not None:
        log.error("message %s is part of chord %s, which a Redis Cluster cannot join: the "
                  "part is settled, the chord's callback will not run",
                  follow_ups.chord.task_id, follow_ups.chord.group_id)
    effects += [Push(canvas_target(m), m.raw) for m in follow_ups.messages]
    effects += [Store(keys.result(i), v, result_ttl_s) for i, v in follow_ups.results]
    return Fenced.of(queue=held.queue, processing=held.processing, raw=held.raw,
                     effects=effects)


def _stored(task_id: str, result: bytes, ttl_s: int) -> list[Effect]:
    return [Store(keys.result(task_id), result, ttl_s)] if result else []


def ack(*, held: Held, task_id: str, result: bytes, result_ttl_s: int,
        record: Record | None = None, follow_ups: FollowUps = canvas.NONE) -> Op[bool]:
    """Done: store ``result`` (``b""``: none), mark ``record`` succeeded, drop the message,
    and send ``follow_ups`` (chain step, callbacks, chord part) only if it lands."""
    processing, result_key = held.processing, keys.result(task_id)
    call = ScriptCall(
        "ack", [processing, result_key, *([record.name] if record else [])],
        [held.raw, task_id, result, result_ttl_s, record.ttl_s if record else 0])
    # Without a record or follow-ups, it can share one call with the batch's other acks.
    plain = None
    if not (record or follow_ups.messages or follow_ups.results or follow_ups.chord):
        plain = PlainAck(processing=processing, raw=held.raw, result_key=result_key,
                         result=result, result_ttl_s=result_ttl_s)

    def on_a_cluster() -> Fenced:  # built only where it runs: every ack builds an Op
        # The record first: a caller that sees the result and dispatches the call again
        # finds it succeeded (on one server the script does both at once).
        effects: list[Effect] = (
            [Succeeded(record.name, task_id, result, record.ttl_s)] if record else [])
        return fenced_settle(held, effects + _stored(task_id, result, result_ttl_s),
                             follow_ups, result_ttl_s)

    return Op(settle_call(call, 6, follow_ups, result_ttl_s), _landed, on_a_cluster, plain)


def dead_letter(*, held: Held, task_id: str, entry: bytes, reason: str, result: bytes,
                result_ttl_s: int, dlq_queue: str, record: Record | None = None,
                follow_ups: FollowUps = canvas.NONE) -> Op[bool]:
    """Will not run again: push the DLQ ``entry`` (counted under ``reason``) to
    ``dlq_queue``'s DLQ, store the final ``result``, drop ``record``, and send
    ``follow_ups`` (errbacks, a chain's FAILURE, the chord part) in the same step."""
    call = ScriptCall(
        "dead_letter",
        [held.processing, keys.dead_letters(dlq_queue), keys.result(task_id or "unknown"),
         keys.dlq_reasons(dlq_queue), *([record.name] if record else [])],
        [held.raw, task_id, entry, result, result_ttl_s, reason])
    return Op(settle_call(call, 7, follow_ups, result_ttl_s), _landed,
              lambda: fenced_settle(held, dead_letter_effects(
                  dlq_queue=dlq_queue, task_id=task_id, entry=entry, reason=reason,
                  result=result, result_ttl_s=result_ttl_s, record=record),
                  follow_ups, result_ttl_s))


def dead_letter_effects(*, dlq_queue: str, task_id: str, entry: bytes, reason: str,
                        result: bytes, result_ttl_s: int,
                        record: Record | None) -> list[Effect]:
    """What ``lib/dead_letter.lua`` writes, as outbox effects (a cluster's dead letter)."""
    effects: list[Effect] = [Push(keys.dead_letters(dlq_queue), entry),
                             Count(keys.dlq_reasons(dlq_queue), reason)]
    effects += _stored(task_id, result, result_ttl_s)
    if record:
        effects.append(DropRecord(record.name, task_id))
    return effects


def schedule(*, held: Held, new_raw: bytes, due_ms: int, target_queue: str,
             task_id: str = "", result: bytes = b"", result_ttl_s: int = 0,
             deferred: bool = False) -> Op[bool]:
    """Not yet: park ``new_raw`` in ``target_queue``'s delayed set (its deferred set when
    ``deferred``) until ``due_ms``; ``result`` (a retry's ``RETRY`` state) is stored for
    ``task_id`` when not empty."""
    parked = keys.deferred(target_queue) if deferred else keys.delayed(target_queue)
    return Op(ScriptCall(
        "schedule", [held.processing, parked, keys.result(task_id or "unknown")],
        [held.raw, new_raw, due_ms, result, result_ttl_s],
    ), _landed, lambda: Fenced.of(
        queue=held.queue, processing=held.processing, raw=held.raw,
        effects=[Park(parked, due_ms, new_raw), *_stored(task_id, result, result_ttl_s)]))


def idempotent_begin(*, record: Record, task_id: str) -> Op[Earlier | None]:
    """Before an idempotent run: the earlier delivery that makes this one not run, or
    None: run it (the record now says running under ``task_id``)."""
    return Op(ScriptCall("idempotent_begin", [record.name], [task_id, record.ttl_s]),
              _read_begin)


def _read_begin(reply: Any) -> Earlier | None:
    status = _as_bytes(reply[0])
    if status == b"done":
        return Earlier("done", _as_bytes(reply[1]).decode(), _as_bytes(reply[2]))
    if status == b"busy":
        return Earlier("pending", _as_bytes(reply[1]).decode())
    return None


def rate_limit(*, task: str, interval_us: float, burst: int = 1) -> Op[int]:
    """Reserve one token of ``task``'s rate limit; the wait until it is due, in µs."""
    return Op(ScriptCall("rate_limit", [keys.rate_limit(task)], [interval_us, burst]),
              _read_wait)


def _read_wait(reply: Any) -> int:
    if isinstance(reply, bool) or not isinstance(reply, int):
        raise ValueError(f"the rate-limit script replied {reply!r}, not a wait in µs")
    return reply
