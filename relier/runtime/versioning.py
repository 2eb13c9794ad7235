"""Payload versions across a rolling deploy: upgrade old payloads, wait for new code.

Every task has a ``version``; producers stamp it in the ``relier_version`` header, and a
message without that header (sent by Celery, or by anything else that speaks its
protocol) counts as version 1. For a message whose handler is registered here:

* same version: its arguments are validated and converted to the annotated types;
* older: the task's upgraders run in order on the JSON arguments (1→2, then 2→3, ...),
  a step without an upgrader passing them through unchanged, and the result is then
  validated against today's signature. So an argument that gained a default needs no
  upgrader, and one that changed incompatibly without an upgrader fails validation;
* newer: :class:`TooNew`. A worker with the newer code may still be rolling out, so the
  executor defers the message (:func:`next_attempt`) as it does an unknown task name.

Whatever cannot be made to fit raises :class:`PayloadError` with reason
``payload_invalid``, naming the argument: running it again cannot fix it, so it is
never retried. This module does no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

import msgspec

from relier.errors import ArgumentError, PayloadError
from relier.protocol import message as wire
from relier.protocol.headers import DEFERRALS_HEADER as DEFERRALS_HEADER
from relier.protocol.message import TaskMessage
from relier.task import Task

#: The pause a deferral records in ``Deferral.due`` (doubled each time, capped). The
#: executor parks a deferred message until its window ends instead (a capable worker takes
#: it sooner: deferred.py); ``due is None`` is what tells it the window has passed.
DEFER_FIRST_S: Final = 1.0
DEFER_MAX_S: Final = 30.0


@dataclass(frozen=True, slots=True)
class Call:
    """Arguments ready for the handler, converted to its annotated types."""

    args: list[Any]
    kwargs: dict[str, Any]
    #: The payload's version when upgraders ran, else ``None``.
    upgraded_from: int | None = None


@dataclass(frozen=True, slots=True)
class TooNew:
    """The payload was written for a newer version of the task than this worker has."""

    version: int
    known: int

    def describe(self, task_name: str) -> str:
        return (f"task {task_name} payload is version {self.version}; this worker has "
                f"version {self.known}")


def payload_version(message: TaskMessage) -> int:
    """The version the producer stamped; 1 when there is none (a Celery producer)."""
    value = message.headers.get(wire.VERSION_HEADER)
    if value is None:
        return 1
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise PayloadError("payload_invalid",
                           f"header {wire.VERSION_HEADER!r} is {value!r}, not an int >= 1")
    return value


def prepare(task: Task[Any, Any], message: TaskMessage) -> Call | TooNew:
    """Bring a message's arguments to what ``task`` takes now, or say it is too new.

    Raises :class:`PayloadError` (``payload_invalid``) when they cannot be made to fit.
    """
    version = payload_version(message)
    if version > task.version:
        return TooNew(version, task.version)
    if version == task.version:
        args, kwargs = task.arguments.from_wire(message.args, message.kwargs)
        return Call(args, kwargs)
    upgraded_args, upgraded_kwargs = upgrade(task, version, message.args, message.kwargs)
    try:
        args, kwargs = task.arguments.from_wire(upgraded_args, upgraded_kwargs)
    except ArgumentError as exc:
        hint = "after its upgraders" if _has_upgraders(task, version) else "with no upgrader"
        raise ArgumentError(
            f"{exc}; a version {version} payload, {hint}, for version {task.version}"
        ) from None
    return Call(args, kwargs, upgraded_from=version)


def upgrade(
    task: Task[Any, Any], version: int, args: list[Any], kwargs: dict[str, Any]
) -> tuple[list[Any], dict[str, Any]]:
    """Run the upgraders from ``version`` up to the task's version, on JSON arguments."""
    for step in range(version, task.version):
        upgrader = task.upgraders.get(step)
        if upgrader is None:
            continue
        name = getattr(upgrader, "__qualname__", repr(upgrader))
        try:
            # Copies: an upgrader that edits in place must not change the message, which
            # may still be re-encoded (a retry) with its original version header.
            result = upgrader(list(args), dict(kwargs))
        except Exception as exc:
            raise PayloadError(
                "payload_invalid",
                f"{task.name}: upgrader {name} (version {step} to {step + 1}) raised {exc!r}",
            ) from exc
        args, kwargs = _upgraded(task.name, name, step, result)
    return args, kwargs


def _upgraded(
    task_name: str, name: str, step: int, result: Any
) -> tuple[list[Any], dict[str, Any]]:
    """Check an upgrader's return value and bring it back to JSON form.

    Back to JSON form because validation converts from the wire: an upgrader may return
    a dataclass or a datetime, and the next upgrader expects what the wire would carry.
    """
    where = f"{task_name}: upgrader {name} (version {step} to {step + 1})"
    if not (isinstance(result, tuple | list) and len(result) == 2
            and isinstance(result[0], list | tuple) and isinstance(result[1], dict)):
        raise PayloadError("payload_invalid",
                           f"{where} returned {type(result).__name__}; expected (args, kwargs)")
    try:
        args, kwargs = msgspec.to_builtins(list(result[0])), msgspec.to_builtins(result[1])
    except (TypeError, msgspec.EncodeError) as exc:
        raise PayloadError("payload_invalid", f"{where} returned values that are not "
                                              f"JSON-serialisable: {exc}") from exc
    return args, kwargs


def _has_upgraders(task: Task[Any, Any], version: int) -> bool:
    return any(step in task.upgraders for step in range(version, task.version))


@dataclass(frozen=True, slots=True)
class Deferral:
    """When to look at a deferred message again; ``due`` is ``None`` once
    ``defer_window`` has passed since its first deferral."""

    due: float | None
    waited: float
    #: Unix time the window ends (counted from the first deferral).
    window_ends: float = 0.0


def next_attempt(message: TaskMessage, now: float, window: float) -> Deferral:
    """Decide the next look at a message this worker cannot run yet (unknown task name,
    newer version), recording the deferral in its headers when there is one.

    The first deferral's time travels in the message, so the window is counted from the
    first worker that deferred it, whichever workers saw it since.
    """
    first = message.headers.get(wire.FIRST_DEFERRED_HEADER)
    first_at = float(first) if isinstance(first, int | float) else now
    waited = max(now - first_at, 0.0)  # a first deferral on a host whose clock runs ahead
    if waited >= window:
        return Deferral(None, waited, first_at + window)
    count = message.headers.get(DEFERRALS_HEADER, 0)
    count = count if isinstance(count, int) and count >= 0 else 0
    pause = min(DEFER_FIRST_S * 2 ** min(count, 16), DEFER_MAX_S, window - waited)
    message.headers[wire.FIRST_DEFERRED_HEADER] = first_at
    message.headers[DEFERRALS_HEADER] = count + 1
    return Deferral(now + pause, waited, first_at + window)


def forget_deferrals(message: TaskMessage) -> None:
    """A message this worker accepts stops being a deferred one: a later retry or a
    deferral at the next rolling deploy gets a whole ``defer_window`` of its own."""
    message.headers.pop(wire.FIRST_DEFERRED_HEADER, None)
    message.headers.pop(DEFERRALS_HEADER, None)
