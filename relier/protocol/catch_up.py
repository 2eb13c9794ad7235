"""Which due ticks to send and which to record as missed, after a pause in scheduling.

A tick is *late* when it is more than ``late_after_ms`` old at the moment the leader sees
it. Late ticks are what a full outage leaves (nobody was leading); ticks younger than
that are what a leader handover leaves (the old leader died and its lease ran out), and
are always sent, so a failover loses nothing. Late ticks follow the schedule's policy:

* ``"skip"``: none is sent; they are recorded as missed.
* ``"once"`` (the default): the newest late tick is sent, unless a younger tick is being
  sent anyway; the rest are missed. A night down costs one run, not 288.
* ``"all"``: every tick is sent, but at most :data:`CATCH_UP_CAP` per schedule (the
  newest ones); older ones are missed.

Missed ticks are always older than the ticks sent with them, so the leader records the
misses first and then sends in order. Pure: no I/O, no clock.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal, get_args

from relier.protocol.cadence import DueTicks

MissedPolicy = Literal["skip", "once", "all"]
MISSED_POLICIES: Final[tuple[str, ...]] = get_args(MissedPolicy)
#: Most ticks ``missed="all"`` sends after an outage (the newest ones).
CATCH_UP_CAP: Final = 100


@dataclass(frozen=True, slots=True)
class Plan:
    """What to do with due ticks: ``send`` them in order, after recording ``missed`` of
    them as missed, up to and including ``missed_through`` (a tick time in ms)."""

    send: tuple[int, ...]
    missed: int
    missed_through: int


def plan(due: DueTicks, *, now_ms: int, policy: MissedPolicy, late_after_ms: int) -> Plan:
    """Decide, per :mod:`the policy <relier.protocol.catch_up>`, for ticks listed newest
    :data:`CATCH_UP_CAP` at most (``due_ticks(..., limit=CATCH_UP_CAP)``)."""
    if not due.complete:
        # A huge outage walked in slices: all of this slice is long past.
        return Plan((), due.count, due.through)
    fresh = tuple(t for t in due.ticks if now_ms - t <= late_after_ms)
    late = due.ticks[: len(due.ticks) - len(fresh)]
    if policy == "all":
        send = due.ticks[-CATCH_UP_CAP:]
    elif policy == "once":
        send = fresh or late[-1:]
    else:
        send = fresh
    missed = due.count - len(send)
    through = send[0] - 1 if send else due.through
    return Plan(send, missed, through if missed else 0)
