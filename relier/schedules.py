"""Declaring periodic tasks: ``relier.cron(...)``, ``relier.every(...)``, ``app.schedule``.

``@rl_task(schedule=relier.cron("*/5 * * * *"))`` runs a task every five minutes;
``app.schedule(task, relier.every(seconds=30, args=(1,)), name="poll-1")`` adds another
schedule for the same task. Each schedule has a stable name (the task's name unless
given), which is what Redis remembers its progress by. The workers send the ticks; see
:mod:`relier.runtime.beat`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from relier.errors import ConfigurationError
from relier.protocol.cadence import Cadence, CadenceError, Cron, Every, check
from relier.protocol.catch_up import MISSED_POLICIES, MissedPolicy
from relier.protocol.declaration import Declaration

if TYPE_CHECKING:
    from relier.task import Task


@dataclass(frozen=True, slots=True)
class ScheduleSpec:
    """When a task runs and with what; made by :func:`cron` or :func:`every`."""

    cadence: Cadence
    args: tuple[Any, ...] = ()
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    jitter: float = 0.0
    missed: MissedPolicy = "once"
    name: str | None = None


def cron(
    expr: str, *, tz: str = "UTC", args: Sequence[Any] = (),
    kwargs: Mapping[str, Any] | None = None, jitter: float = 0.0,
    missed: MissedPolicy = "once", name: str | None = None,
) -> ScheduleSpec:
    """Run at the times a cron expression names, in the IANA zone ``tz``.

    Five fields (minute hour day month weekday), or six with seconds first; ``L``,
    ``LW``, ``MON#2`` and names work (cronsim's dialect, Debian cron's meaning). DST:
    a local time skipped by a spring-forward runs once at the first valid time after the
    gap; one repeated by a fall-back runs once; hourly or more frequent expressions
    follow real time. ``jitter``: delay each run by a random 0..jitter seconds.
    ``missed``: what a restart after an outage sends (``skip``, ``once``, ``all``).
    """
    return _spec(Cron(expr=expr, tz=tz), args, kwargs, jitter, missed, name)


def every(
    seconds: float = 0, *, minutes: float = 0, hours: float = 0, args: Sequence[Any] = (),
    kwargs: Mapping[str, Any] | None = None, jitter: float = 0.0,
    missed: MissedPolicy = "once", name: str | None = None,
) -> ScheduleSpec:
    """Run every ``hours + minutes + seconds`` (at least 1 s), at whole multiples of the
    interval since the epoch (``every(seconds=30)`` runs at :00 and :30 of each minute).
    Other keywords as for :func:`cron`."""
    interval_ms = round((seconds + 60 * minutes + 3600 * hours) * 1000)
    return _spec(Every(interval_ms=interval_ms), args, kwargs, jitter, missed, name)


def _spec(
    cadence: Cadence, args: Sequence[Any], kwargs: Mapping[str, Any] | None, jitter: float,
    missed: MissedPolicy, name: str | None,
) -> ScheduleSpec:
    try:
        check(cadence)
    except CadenceError as exc:
        raise ConfigurationError(f"schedule: {exc}") from None
    if missed not in MISSED_POLICIES:
        raise ConfigurationError(f"schedule: missed={missed!r} is not one of "
                                 f"{', '.join(MISSED_POLICIES)}")
    if isinstance(jitter, bool) or not isinstance(jitter, int | float) or not jitter >= 0:
        raise ConfigurationError(f"schedule: jitter must be >= 0 seconds, got {jitter!r}")
    if name is not None and (not name or any(c.isspace() for c in name)):
        raise ConfigurationError(f"schedule: name must be non-empty without spaces, "
                                 f"got {name!r}")
    return ScheduleSpec(cadence, tuple(args), dict(kwargs or {}), float(jitter), missed, name)


def declaration(task: Task[Any, Any], spec: ScheduleSpec, name: str | None = None) -> Declaration:
    """The declaration of ``task`` on ``spec``; the arguments are checked against the
    task's type hints now, so a wrong schedule fails when the module is imported."""
    if not isinstance(spec, ScheduleSpec):
        raise ConfigurationError(f"task {task.name}: schedule must come from relier.cron() "
                                 f"or relier.every(), got {spec!r}")
    wire_args, wire_kwargs = task.arguments.to_wire(spec.args, dict(spec.kwargs))
    return Declaration(
        name=name or spec.name or task.name, task=task.name, queue=task.queue,
        cadence=spec.cadence, args=wire_args, kwargs=wire_kwargs, jitter=spec.jitter,
        missed=spec.missed, version=task.version, idempotent=task.idempotent,
        soft_timeout=task.soft_timeout, hard_timeout=task.hard_timeout,
        ignore_result=task.ignore_result, max_queue_depth=task.max_queue_depth,
    )
