"""When a schedule is due: cron expressions and fixed intervals, as pure functions of time.

Times are integers, milliseconds since the epoch (UTC), so a tick has one stable identity
whatever clock or zone reads it; a schedule's tick *is* its time. No I/O here, and no
reading of the clock: every function takes ``now`` or ``after``, so DST and time zones are
tested with chosen instants instead of waiting.

* :class:`Every` ticks at whole multiples of its interval since the epoch (``every 30 s``
  ticks at :00 and :30), so every leader computes the same ticks.
* :class:`Cron` is evaluated by cronsim (Debian cron's rules) in the schedule's IANA
  zone. Across DST changes that means: a local time that a spring-forward skips runs once,
  at the first valid time after the gap (``30 2 * * *`` runs at 03:00 that day); a local
  time that a fall-back repeats runs once, at its first occurrence; expressions that fire
  every hour or more often follow real time (no run is added or lost, the hour that is
  repeated fires by elapsed time).
"""

from __future__ import annotations

import collections
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import msgspec
from cronsim import CronSim, CronSimError

#: At most this many cron ticks are walked in one call (about 50 ms); a longer outage is
#: walked over several passes, each recording what it walked as missed.
SCAN_CAP: Final = 20_000


class CadenceError(ValueError):
    """A cron expression, zone or interval that cannot be used (says which and why)."""


class Cron(msgspec.Struct, frozen=True, tag="cron"):
    """A cron expression (5 fields, or 6 with seconds first) in an IANA time zone."""

    expr: str
    tz: str = "UTC"

    def __str__(self) -> str:
        return f"cron({self.expr!r}, tz={self.tz})"


class Every(msgspec.Struct, frozen=True, tag="every"):
    """A fixed interval, aligned to the epoch."""

    interval_ms: int

    def __str__(self) -> str:
        return f"every({self.interval_ms / 1000:g}s)"


Cadence = Cron | Every


@dataclass(frozen=True, slots=True)
class DueTicks:
    """The ticks after some instant up to now.

    ``ticks``: the newest ones (ascending, at most the limit asked for); ``earlier``: how
    many older ones were not listed; ``complete``: False when a cron walk stopped at
    :data:`SCAN_CAP` before reaching now (``ticks`` then end at ``through``).
    """

    ticks: tuple[int, ...]
    earlier: int
    through: int
    complete: bool = True

    @property
    def count(self) -> int:
        return self.earlier + len(self.ticks)


def zone(name: str) -> ZoneInfo:
    """The IANA zone named ``name``; raises :class:`CadenceError` for an unknown one."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise CadenceError(f"unknown time zone {name!r} (an IANA name such as "
                           f"'Europe/Paris' or 'UTC'): {exc}") from None


def check(cadence: Cadence) -> Cadence:
    """Return ``cadence`` if it can be evaluated; raise :class:`CadenceError` if not."""
    if isinstance(cadence, Every):
        if cadence.interval_ms < 1000:
            raise CadenceError(f"every(): the interval must be at least 1 second, "
                               f"got {cadence.interval_ms / 1000:g}s")
        return cadence
    tz = zone(cadence.tz)
    try:
        CronSim(cadence.expr, datetime(2000, 1, 1, tzinfo=tz))
    except CronSimError as exc:
        raise CadenceError(f"cron expression {cadence.expr!r}: {exc}") from None
    return cadence


def _aware(ms: int, tz: ZoneInfo) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC).astimezone(tz)


def _ms(moment: datetime) -> int:
    return round(moment.timestamp() * 1000)


def next_after(cadence: Cadence, after_ms: int) -> int | None:
    """The first tick strictly after ``after_ms`` (None: a cron that never fires again)."""
    if isinstance(cadence, Every):
        return (after_ms // cadence.interval_ms + 1) * cadence.interval_ms
    try:
        return _ms(next(CronSim(cadence.expr, _aware(after_ms, zone(cadence.tz)))))
    except StopIteration:
        return None


def due_ticks(cadence: Cadence, after_ms: int, now_ms: int, limit: int) -> DueTicks:
    """The ticks in ``(after_ms, now_ms]``: the newest ``limit`` of them, and a count."""
    if isinstance(cadence, Every):
        return _every_due(cadence.interval_ms, after_ms, now_ms, limit)
    newest: collections.deque[int] = collections.deque(maxlen=limit)
    walked = 0
    for moment in CronSim(cadence.expr, _aware(after_ms, zone(cadence.tz))):
        tick = _ms(moment)
        if tick > now_ms:
            break
        newest.append(tick)
        walked += 1
        if walked >= SCAN_CAP:
            return DueTicks(tuple(newest), walked - len(newest), tick, complete=False)
    return DueTicks(tuple(newest), walked - len(newest), newest[-1] if newest else after_ms)


def _every_due(interval: int, after_ms: int, now_ms: int, limit: int) -> DueTicks:
    first = (after_ms // interval + 1) * interval
    last = now_ms // interval * interval
    if last < first:
        return DueTicks((), 0, after_ms)
    total = (last - first) // interval + 1
    shown = min(total, limit)
    ticks = tuple(last - interval * i for i in range(shown - 1, -1, -1))
    return DueTicks(ticks, total - shown, last)
