"""Celery's canvas on the wire: the messages a finished step sends (signatures are read
and checked in ``signature.py``; their names are re-exported here).

A message's ``embed`` (``[args, kwargs, embed]``) carries what runs after it:
``callbacks`` (``link``), ``errbacks`` (``link_error``), ``chain`` (the remaining steps,
**reversed**: the last element runs next) and ``chord`` (the callback of the chord this
task is a header part of). Each is a *signature*: ``{"task", "args", "kwargs",
"options", "subtask_type", "immutable"}``.

:func:`read_canvas` checks all of it before the task runs, so a message whose canvas
Relier cannot honour is refused whole (:class:`CanvasUnsupported`, dead-lettered as
``canvas_unsupported``), never half done. :func:`after_success` and
:func:`after_failure` build what a settle script sends with the settle (``FollowUps``):
the next chain step with the parent's result prepended, link callbacks, errbacks with
Celery's ``(task_id,)`` argument, the FAILURE that Celery writes for the rest of a
broken chain, and a chord part with its callback pre-built around a slot for the joined
results (the other parts' results exist only in Redis, so the script fills them in).

Pure: no redis, no anyio, no clock other than for ``countdown``.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import msgspec

from relier.protocol import message as wire
from relier.protocol import results
from relier.protocol.message import TaskMessage
from relier.protocol.signature import (
    Canvas,
    CanvasUnsupported,
    Signature,
    as_list,
    read_canvas,
    read_signature,
)

__all__ = [
    "Canvas", "CanvasUnsupported", "ChordPart", "FollowUps", "Lineage", "Outbound", "Route",
    "Signature", "after_failure", "after_revoke", "after_success", "message_for",
    "outbound", "queue_of", "read_canvas", "read_signature", "send_group",
]

#: Chord parts in these states fail the chord (Celery's ``PROPAGATE_STATES``).
PROPAGATE_STATES: Final = frozenset({results.FAILURE, results.REVOKED})
#: The stand-in, inside a chord callback's pre-built body, for the joined results.
RESULTS_SLOT: Final = "\x00relier:chord-results\x00"
#: The stand-in for the base64 body inside a pre-built envelope.
BODY_SLOT: Final = "\x00relier:body\x00"
#: The stand-in for the message of a chord's ``ChordError``.
ERROR_SLOT: Final = "\x00relier:chord-error\x00"


# -- building messages from signatures ------------------------------------------------

#: Picks a signature's queue when its options name none (the worker's routing rule).
Route = Callable[[Signature], str]


@dataclass(frozen=True, slots=True)
class Lineage:
    """The ids a sent signature inherits: Celery's ``parent_id``/``root_id`` and, for a
    group's members, ``group``/``group_index``."""

    parent_id: str | None
    root_id: str | None
    group_id: str | None = None
    group_index: int | None = None


@dataclass(frozen=True, slots=True)
class Outbound:
    """A message to LPUSH onto ``queue``'s list for ``priority`` (the store names it)."""

    raw: bytes
    task_id: str
    queue: str
    priority: int | None = None


def _moment(value: Any, now: datetime) -> datetime | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return now + timedelta(seconds=value)
    if isinstance(value, str):
        return wire.aware(datetime.fromisoformat(value))
    return value if isinstance(value, datetime) else None


def message_for(
    sig: Signature, lead_args: Sequence[Any], *, queue: str, lineage: Lineage,
    chain: Sequence[Signature] = (), origin: str = "relier",
) -> TaskMessage:
    """The message Celery sends for ``sig.apply_async(lead_args, chain=chain, ...)``.

    ``lead_args`` (the parent's result) are prepended unless the signature is immutable.
    """
    o, now = sig.options, datetime.now(UTC)
    args = list(sig.args) if sig.immutable else [*lead_args, *sig.args]
    eta = _moment(o.get("eta"), now)
    if isinstance(o.get("countdown"), int | float):
        eta = now + timedelta(seconds=o["countdown"])
    headers = {**(o.get("headers") or {}), wire.SENT_AT_HEADER: round(now.timestamp(), 3)}
    for name in ("shadow", "stamped_headers", "stamps"):
        if name in o:
            headers[name] = o[name]
    message = wire.build(
        sig.task, args, sig.kwargs, queue=queue, task_id=sig.id, priority=o.get("priority"),
        eta=eta, expires=_moment(o.get("expires"), now), hard_timeout=o.get("time_limit"),
        soft_timeout=o.get("soft_time_limit"), ignore_result=bool(o.get("ignore_result")),
        origin=origin, extra_headers=headers,
    )
    _place(message, lineage, o)
    message.embed = {
        "callbacks": _wire_list(o.get("link")), "errbacks": _wire_list(o.get("link_error")),
        "chain": [s.to_wire() for s in chain] or None, "chord": o.get("chord"),
    }
    if isinstance(o.get("reply_to"), str):
        message.properties["reply_to"] = o["reply_to"]
    return message


def _wire_list(value: Any) -> list[Any] | None:
    items = [v.to_wire() if isinstance(v, Signature) else v for v in as_list(value)]
    return items or None


def _place(message: TaskMessage, lineage: Lineage, options: dict[str, Any]) -> None:
    """Set the ids Celery sets: the group from the options (a chord's callback, a chain
    step inside a chord) unless the caller's group says otherwise."""
    group = lineage.group_id or options.get("group_id")
    index = lineage.group_index if lineage.group_id else options.get("group_index")
    message.root_id = lineage.root_id or message.id
    message.parent_id, message.group, message.group_index = lineage.parent_id, group, index
    message.headers.update(root_id=message.root_id, parent_id=lineage.parent_id,
                           group=group, group_index=index)


def queue_of(sig: Signature, route: Route) -> str:
    """``options.queue`` (or ``routing_key`` on the default exchange), else ``route``."""
    for name in ("queue", "routing_key"):
        value = sig.options.get(name)
        if isinstance(value, str) and value:
            return value
    return route(sig)


def outbound(message: TaskMessage) -> Outbound:
    return Outbound(wire.encode(message), message.id, message.queue, message.priority)


def send_group(
    sigs: Sequence[Signature], lead_args: Sequence[Any], *, route: Route, parent_id: str | None,
    root_id: str | None, group_id: str | None = None, origin: str = "relier",
) -> list[Outbound]:
    """``group(sigs).apply_async(lead_args)``: one message per member, sharing a group id."""
    gid = group_id or wire.new_task_id()
    return [
        outbound(message_for(sig, lead_args, queue=queue_of(sig, route), origin=origin,
                             lineage=Lineage(parent_id, root_id, gid, i)))
        for i, sig in enumerate(sigs)
    ]


# -- what a finished step sends ---------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ChordPart:
    """This task's entry in its chord's join, and the callback to send if it completes it.

    The callback is pre-built around two slots: ``callback_envelope`` holds
    :data:`BODY_SLOT` where its base64 body goes, ``callback_body`` holds
    :data:`RESULTS_SLOT` where the JSON list of results goes (absent when immutable).
    ``failure`` is the callback's FAILURE result with :data:`ERROR_SLOT` for the
    ``ChordError`` message, and ``errbacks`` what the callback's ``link_error`` sends then.
    """

    group_id: str
    task_id: str
    group_index: int | None
    #: ``[1, task_id, state, result]`` as Celery's backend encodes it.
    member: bytes
    #: The callback's queue and priority (its list is named by the store).
    callback_queue: str
    callback_priority: int | None
    callback_id: str
    callback_envelope: bytes
    callback_body: bytes
    failure: bytes
    errbacks: tuple[Outbound, ...] = ()


@dataclass(frozen=True, slots=True)
class FollowUps:
    """Everything one settle sends along with it."""

    messages: tuple[Outbound, ...] = ()
    #: ``(task_id, result JSON)``: results written for tasks that will never run.
    results: tuple[tuple[str, bytes], ...] = ()
    chord: ChordPart | None = None

    @property
    def empty(self) -> bool:
        return not (self.messages or self.results or self.chord)


NONE: Final = FollowUps()


def after_success(
    message: TaskMessage, canvas: Canvas, value: Any, route: Route, origin: str = "relier",
) -> FollowUps:
    """What Celery's worker sends after a success: callbacks (as a group when there are
    several), then the next chain step with the rest of the chain; and the chord part."""
    parent, root = message.id, message.root_id or message.id
    sent: list[Outbound] = []
    if len(canvas.callbacks) == 1:
        sig = canvas.callbacks[0]
        sent.append(outbound(message_for(sig, [value], queue=queue_of(sig, route),
                                         lineage=Lineage(parent, root), origin=origin)))
    elif canvas.callbacks:
        sent += send_group(canvas.callbacks, [value], route=route, parent_id=parent,
                           root_id=root, origin=origin)
    if canvas.chain:
        step = canvas.chain[-1]
        sent.append(outbound(message_for(step, [value], queue=queue_of(step, route),
                                         lineage=Lineage(parent, root), chain=canvas.chain[:-1],
                                         origin=origin)))
    chord = _chord_part(message, canvas, results.SUCCESS, value, route, origin)
    return FollowUps(tuple(sent), (), chord)


def after_failure(
    message: TaskMessage, canvas: Canvas, failure: results.ResultMeta, route: Route,
    origin: str = "relier",
) -> FollowUps:
    """What Celery's backend does on a failure: the same FAILURE for every remaining chain
    step that has an id (so the chain's last result is not PENDING forever), the chord
    part, and the errbacks, sent as tasks with the failed task's id as their argument."""
    stored = tuple(
        (sig.id, results.encode(msgspec.structs.replace(failure, task_id=sig.id)))
        for sig in canvas.chain if sig.id
    )
    errbacks = _errbacks(canvas.errbacks, message.id, message.root_id or message.id, route,
                         origin)
    chord = _chord_part(message, canvas, failure.status, failure.result, route, origin) \
        or _chain_chord_part(message, canvas, failure, route, origin)
    return FollowUps(errbacks, stored, chord)


def after_revoke(
    message: TaskMessage, canvas: Canvas, revoked: results.ResultMeta, route: Route,
    origin: str = "relier",
) -> FollowUps:
    """A revoked task (Celery's ``mark_as_revoked``): only its chord part, as REVOKED,
    which fails the chord; no errbacks, and the chain simply stops."""
    return FollowUps(chord=_chord_part(message, canvas, revoked.status, revoked.result,
                                       route, origin))


def _chain_chord_part(
    message: TaskMessage, canvas: Canvas, failure: results.ResultMeta, route: Route,
    origin: str,
) -> ChordPart | None:
    """A chain that is a chord header member carries the chord on its last step; when an
    earlier step fails, that step's part is joined as failed (Celery's backend does the
    same), so the chord fails instead of waiting forever."""
    for sig in canvas.chain:
        chord = sig.options.get("chord")
        if chord and sig.options.get("group_id") and sig.id:
            step = message_for(sig, [], queue=queue_of(sig, route), origin=origin,
                               lineage=Lineage(message.id, message.root_id or message.id))
            return _chord_part(step, Canvas(chord=read_signature(chord, "chain step chord")),
                               failure.status, failure.result, route, origin)
    return None


def _errbacks(
    sigs: Sequence[Signature], task_id: str, root_id: str, route: Route, origin: str,
) -> tuple[Outbound, ...]:
    """``group(errbacks).apply_async((task_id,), parent_id=task_id, root_id=root_id)``."""
    if len(sigs) == 1:
        sig = sigs[0]
        return (outbound(message_for(sig, [task_id], queue=queue_of(sig, route),
                                     lineage=Lineage(task_id, root_id), origin=origin)),)
    return tuple(send_group(sigs, [task_id], route=route, parent_id=task_id,
                            root_id=root_id, origin=origin))


def _chord_part(
    message: TaskMessage, canvas: Canvas, state: str, value: Any, route: Route, origin: str,
) -> ChordPart | None:
    callback = canvas.chord
    if callback is None or not message.group:
        return None
    callback = callback.frozen()
    cb_id = str(callback.id)
    queue = queue_of(callback, route)
    cb = message_for(callback, [RESULTS_SLOT], queue=queue, origin=origin,
                     lineage=Lineage(message.id, message.root_id or message.id))
    cb.headers["argsrepr"] = "(<chord results>,)"
    body = wire.encode_json([cb.args, cb.kwargs, cb.embed])
    envelope = wire.decode_json(wire.encode(cb))
    envelope["body"] = BODY_SLOT
    failure = results.failure_from(cb_id, "ChordError", "celery.exceptions", [ERROR_SLOT], None)
    return ChordPart(
        group_id=message.group, task_id=message.id, group_index=message.group_index,
        member=wire.encode_json([1, message.id, state, value]),
        callback_queue=queue, callback_priority=cb.priority, callback_id=cb_id,
        callback_envelope=wire.encode_json(envelope), callback_body=body,
        failure=results.encode(failure),
        errbacks=_errbacks([read_signature(s, "chord link_error")
                            for s in as_list(callback.options.get("link_error"))],
                           cb_id, cb_id, route, origin),
    )


def slot_split(text: bytes, slot: str) -> tuple[bytes, bytes]:
    """``text`` around the JSON string ``slot`` (absent: all of it, and b"")."""
    marker = wire.encode_json(slot)
    head, found, tail = text.partition(marker)
    return (head, tail) if found else (text, b"")


def new_group_id() -> str:
    return str(uuid.uuid4())
