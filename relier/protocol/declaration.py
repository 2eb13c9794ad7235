"""A schedule as workers declare it in Redis: everything the leader needs to send its ticks.

A declaration carries the task's name, queue and sending options and the arguments
already in their JSON form, so any leader can send the tick, including one running an
older release that does not know the task. Bytes read back are decoded strictly; an
entry that does not decode is reported and ignored, never half-used.
"""

from __future__ import annotations

from typing import Any, Final

import msgspec

from relier.protocol.cadence import Cadence, CadenceError, check
from relier.protocol.catch_up import MISSED_POLICIES


class Declaration(msgspec.Struct, frozen=True, kw_only=True):
    """One schedule: its stable ``name``, when it ticks and what each tick sends."""

    name: str
    task: str
    queue: str
    cadence: Cadence
    args: list[Any] = msgspec.field(default_factory=list)
    kwargs: dict[str, Any] = msgspec.field(default_factory=dict)
    #: Each tick's message waits a random 0..jitter seconds in the delayed set.
    jitter: float = 0.0
    #: ``skip``, ``once`` or ``all``: see :mod:`relier.protocol.catch_up`.
    missed: str = "once"
    version: int = 1
    idempotent: bool = False
    soft_timeout: float | None = None
    hard_timeout: float | None = None
    ignore_result: bool = False
    max_queue_depth: int | None = None


class Registration(msgspec.Struct, frozen=True, kw_only=True):
    """What one worker declares: its schedules, and when it started (the newest-started
    worker's declaration of a name wins, so a deploy's new specs take over at once)."""

    worker: str
    started_at: float
    schedules: list[Declaration]


_decoder: Final = msgspec.json.Decoder(Registration)
_encoder: Final = msgspec.json.Encoder()


class DeclarationError(ValueError):
    """Bytes in Redis that are not a usable registration (says why)."""


def encode(registration: Registration) -> bytes:
    return _encoder.encode(registration)


def decode(raw: bytes) -> Registration:
    """A registration read from Redis; raises :class:`DeclarationError` if unusable."""
    try:
        registration = _decoder.decode(raw)
        for declared in registration.schedules:
            check(declared.cadence)
            if declared.missed not in MISSED_POLICIES:
                raise DeclarationError(f"schedule {declared.name!r}: missed="
                                       f"{declared.missed!r} is not one of {MISSED_POLICIES}")
    except (msgspec.DecodeError, CadenceError) as exc:
        raise DeclarationError(str(exc)) from None
    return registration


def merge(registrations: list[Registration]) -> dict[str, Declaration]:
    """One declaration per name: the newest-started worker's (ties: the larger id)."""
    chosen: dict[str, Declaration] = {}
    for registration in sorted(registrations, key=lambda r: (r.started_at, r.worker)):
        for declared in registration.schedules:
            chosen[declared.name] = declared
    return chosen
