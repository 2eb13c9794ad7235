"""Plain acks of one processing list sent as one ``ack_many.lua`` call.

A busy worker's batch of settles is mostly plain acks: no idempotency record, no
follow-ups, a result or none. Sent one ``ack.lua`` call each, every ack costs its own
command to pack (about fifteen arguments), its own reply and its own Lua invocation; the
acks of one processing list with one result TTL become one call here, with two
arguments per message. Each message is still fenced on its own (``ack_many.lua`` takes
each out of the processing list and writes only for those it found), and its reply is
split back so that every :class:`~relier.store.runner.Op` reads its own answer.

Only for one server: on a Redis Cluster each settle runs as its fence and outbox
(:mod:`relier.store.outbox`) and nothing is coalesced (:func:`relier.store.ops.run_all`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from relier.store.runner import Op, ScriptCall


@dataclass(frozen=True, slots=True, kw_only=True)
class PlainAck:
    """An ack that ``ack_many.lua`` can do: take ``raw`` out of ``processing`` and, if it
    was there, store ``result`` (``b""``: none) under ``result_key``."""

    processing: str
    raw: bytes
    result_key: str
    result: bytes
    result_ttl_s: int


@dataclass(frozen=True, slots=True)
class Plan:
    """The calls to send, and where each operation's answer is in their replies: the
    index of its call, and its place in that call's list (None: the whole reply)."""

    calls: list[ScriptCall]
    where: list[tuple[int, int | None]]


def plan(ops: Sequence[Op[Any]]) -> Plan:
    """The calls for ``ops``, in order of each group's first operation; plain acks that
    share a processing list and a result TTL (two or more) become one call."""
    groups: dict[tuple[str, int], list[tuple[int, PlainAck]]] = {}
    for i, op in enumerate(ops):
        if op.plain_ack is not None:
            ack = op.plain_ack
            groups.setdefault((ack.processing, ack.result_ttl_s), []).append((i, ack))
    calls: list[ScriptCall] = []
    where: list[tuple[int, int | None]] = [(0, None)] * len(ops)
    for i, op in enumerate(ops):
        plain = op.plain_ack
        members = groups[plain.processing, plain.result_ttl_s] if plain is not None else []
        if len(members) < 2:
            where[i] = (len(calls), None)
            calls.append(op.call)
        elif members[0][0] == i:
            for place, (j, _) in enumerate(members):
                where[j] = (len(calls), place)
            calls.append(_ack_many([member for _, member in members]))
    return Plan(calls, where)


def _ack_many(acks: Sequence[PlainAck]) -> ScriptCall:
    args: list[str | bytes | int | float] = [acks[0].result_ttl_s]
    for ack in acks:
        args += (ack.raw, ack.result)
    return ScriptCall("ack_many", [acks[0].processing, *(a.result_key for a in acks)], args)


@dataclass(frozen=True, slots=True)
class Unreadable:
    """A coalesced call's reply that is not one integer per message: what each of its
    operations gets instead of an answer, which no ``read`` accepts."""

    reply: Any


def split(plan_: Plan, replies: Sequence[Any]) -> list[Any]:
    """Each operation's own answer, in order. An error goes to every operation of its
    call; a coalesced reply of the wrong shape becomes :class:`Unreadable` for each."""
    answers = []
    for call, place in plan_.where:
        reply = replies[call]
        if place is None or isinstance(reply, BaseException):
            answers.append(reply)
        elif isinstance(reply, list) and len(reply) == len(plan_.calls[call].keys) - 1:
            answers.append(reply[place])
        else:
            answers.append(Unreadable(reply))
    return answers
