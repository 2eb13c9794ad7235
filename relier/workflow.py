"""Canvas from Relier code: ``chain``, ``group`` and ``chord``, in Celery's wire format.

Build signatures with ``task.s(...)`` (the parent's result is prepended to its arguments)
or ``task.si(...)`` (immutable: it ignores the parent's result), combine them, then
``push()``/``apush()``. A chain sends its first step carrying the rest (``embed.chain``);
a group sends every member with one group id and saves the ``GroupResult`` Celery's
``GroupResult.restore`` reads; a chord sends its header with the callback in
``embed.chord`` and sets the chord size that the join counts to. Each push is one
``canvas_push.lua`` call, so it is sent whole or not at all. What follows a step is sent by
the worker that settles it, in the settle's own script (``relier.protocol.canvas``).

An immutable signature (``.si``) is checked against the task's type hints when made; a
``.s`` signature's arguments are partial (the parent's result is still to come), so they
are checked on the worker; nested canvases (a group inside a chain...) are not supported
and raise ``TypeError`` when built.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import msgspec

from relier.errors import ArgumentError, BrokerUnavailable
from relier.handle import TaskHandle
from relier.protocol import canvas
from relier.protocol import message as wire
from relier.protocol.canvas import Lineage, Outbound, Signature
from relier.settings import redact
from relier.store import canvas as store_canvas
from relier.store.canvas import CanvasPush
from relier.store.errors import StoreConnectionError as RedisConnectionError
from relier.store.errors import StoreTimeoutError as RedisTimeoutError

if TYPE_CHECKING:
    from relier.app import App

__all__ = ["GroupHandle", "Signature", "chain", "chord", "group"]


def _app_of(sigs: Sequence[Signature]) -> App:
    for sig in sigs:
        if sig.origin is not None:
            return sig.origin.app  # type: ignore[no-any-return]
    raise TypeError("a canvas needs at least one signature made by task.s() or task.si()")


def _checked(sigs: Iterable[Any], what: str) -> list[Signature]:
    items = list(sigs)
    for sig in items:
        if not isinstance(sig, Signature):
            raise TypeError(f"{what} takes signatures (task.s(...)); nested "
                            f"{type(sig).__name__} is not supported")
    if not items:
        raise TypeError(f"{what} needs at least one signature")
    return [s.frozen() for s in items]


def _route(sig: Signature) -> str:
    return str(sig.origin.queue) if sig.origin is not None else "default"


def _handle(app: App, sig: Signature) -> TaskHandle[Any]:
    rtype = sig.origin.arguments.return_type if sig.origin is not None else Any
    return TaskHandle(app, str(sig.id), return_type=rtype)


def _send(app: App, push: CanvasPush) -> None:
    try:
        store_canvas.send_sync(app.sync_client(), push)
    except (RedisConnectionError, RedisTimeoutError) as exc:
        raise BrokerUnavailable(redact(app.settings.redis_url), exc) from None


async def _asend(app: App, push: CanvasPush) -> None:
    try:
        await store_canvas.send(app.broker().client, push)
    except (RedisConnectionError, RedisTimeoutError) as exc:
        raise BrokerUnavailable(redact(app.settings.redis_url), exc) from None


class chain:
    """Steps run one after another; each step's result is prepended to the next one's
    arguments (unless it was made with ``.si``). ``push()`` returns the last step's handle."""

    def __init__(self, *steps: Signature) -> None:
        self.steps = _checked(steps, "chain")
        self.app = _app_of(self.steps)

    def _push(self) -> CanvasPush:
        first, rest = self.steps[0], self.steps[1:]
        message = canvas.message_for(first, [], queue=canvas.queue_of(first, _route),
                                     lineage=Lineage(None, None), chain=rest[::-1])
        return CanvasPush([canvas.outbound(message)], ttl=self.app.settings.result_ttl)

    def push(self) -> TaskHandle[Any]:
        _send(self.app, self._push())
        return _handle(self.app, self.steps[-1])

    async def apush(self) -> TaskHandle[Any]:
        await _asend(self.app, self._push())
        return _handle(self.app, self.steps[-1])


class GroupHandle:
    """A pushed group: its id and one handle per member, in order."""

    def __init__(self, group_id: str, children: list[TaskHandle[Any]]) -> None:
        self.id = group_id
        self.children = children

    def __repr__(self) -> str:
        return f"<GroupHandle {self.id} ({len(self.children)} tasks)>"

    def results(self, timeout: float | None = None) -> list[Any]:
        """Every member's result, in order (``TaskFailed`` for the first that failed)."""
        return [child.result(timeout=timeout) for child in self.children]

    async def aresults(self, timeout: float | None = None) -> list[Any]:
        return [await child.aresult(timeout=timeout) for child in self.children]


def _group_value(group_id: str, ids: Sequence[str]) -> bytes:
    """What Celery's ``GroupResult.save()`` stores (``e_groupresult_save_value``)."""
    return wire.encode_json({"result": [[group_id, None], [[[i, None], None] for i in ids]]})


class group:
    """Members run in parallel; ``push()`` returns a :class:`GroupHandle`."""

    def __init__(self, *members: Signature | Iterable[Signature]) -> None:
        flat: list[Any] = []
        for m in members:
            flat.extend([m] if isinstance(m, Signature) else list(m))
        self.members = _checked(flat, "group")
        self.app = _app_of(self.members)

    def _messages(self, group_id: str, chord_body: Signature | None = None) -> list[Outbound]:
        sigs = self.members
        if chord_body is not None:
            sigs = [s.set(chord=chord_body.to_wire()) for s in sigs]
        return canvas.send_group(sigs, [], route=_route, parent_id=None, root_id=None,
                                 group_id=group_id)

    def _push(self) -> tuple[CanvasPush, GroupHandle]:
        gid = canvas.new_group_id()
        handles = [_handle(self.app, s) for s in self.members]
        push = CanvasPush(self._messages(gid), gid, _group_value(gid, [h.id for h in handles]),
                          ttl=self.app.settings.result_ttl)
        return push, GroupHandle(gid, handles)

    def push(self) -> GroupHandle:
        push, handle = self._push()
        _send(self.app, push)
        return handle

    async def apush(self) -> GroupHandle:
        push, handle = self._push()
        await _asend(self.app, push)
        return handle


class chord:
    """A group (the header) whose results, in order, are passed as one list to ``body``
    once every member has finished; ``push()`` returns the body's handle. A member that
    fails fails the chord: the body's result is Celery's ``ChordError``."""

    def __init__(self, header: group | Iterable[Signature], body: Signature) -> None:
        self.header = header if isinstance(header, group) else group(header)
        self.body = _checked([body], "chord body")[0]
        self.app = self.header.app

    def _push(self) -> CanvasPush:
        gid = canvas.new_group_id()
        body = self.body.set(group_id=gid)
        if "queue" not in body.options:
            body = body.set(queue=_route(body))
        return CanvasPush(self.header._messages(gid, body), gid,
                          chord_size=len(self.header.members),
                          ttl=self.app.settings.result_ttl)

    def push(self) -> TaskHandle[Any]:
        _send(self.app, self._push())
        return _handle(self.app, self.body)

    async def apush(self) -> TaskHandle[Any]:
        await _asend(self.app, self._push())
        return _handle(self.app, self.body)


def signature_of(task: Any, args: tuple[Any, ...], kwargs: dict[str, Any],
                 immutable: bool) -> Signature:
    """``task.s()``/``task.si()``: the call as plain JSON data, routed to the task's queue."""
    # The payload version travels in the signature's headers, so whichever worker sends
    # the step (Relier or Celery) stamps it as the producer would.
    options = {"queue": task.queue, "headers": {wire.VERSION_HEADER: task.version}}
    if immutable:  # the whole call is known: checked against the type hints, as a push is
        wire_args, wire_kwargs = task.arguments.to_wire(args, kwargs)
    else:  # the parent's result is still to come: only JSON-ness can be checked here
        try:
            wire_args, wire_kwargs = msgspec.to_builtins(list(args)), msgspec.to_builtins(kwargs)
        except (TypeError, msgspec.EncodeError) as exc:
            raise ArgumentError(f"{task.name}.s(): arguments are not JSON-serialisable: "
                                f"{exc}") from None
    return Signature(task.name, tuple(wire_args), wire_kwargs, options, immutable, origin=task)
