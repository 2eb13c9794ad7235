"""The schedules as ``relier schedules`` and ``relier inspect`` show them.

A schedule is listed while a live worker declares it (what the leader would send): its
cadence and zone, the next run by this clock, the last tick done and the task it sent
with that task's state from its result, how many runs were sent and missed and why, and
who leads. Reads only, through a blocking client.
"""

from __future__ import annotations

import time
from typing import Any

import msgspec

from relier.errors import PayloadError
from relier.protocol import cadence, results
from relier.protocol.declaration import Declaration, merge
from relier.store import results as result_store
from relier.store import schedules as store
from relier.store.clients import SyncClient


class ScheduleView(msgspec.Struct, kw_only=True):
    """One schedule; times are Unix seconds (None: not yet)."""

    name: str
    task: str
    queue: str
    #: ``cron('*/5 * * * *', tz=Europe/Paris)`` or ``every(30s)``.
    spec: str
    timezone: str
    missed_policy: str
    jitter: float
    args: list[Any]
    kwargs: dict[str, Any]
    next_run: float | None
    #: The tick (its scheduled time) of the last run sent, and when it was sent.
    last_run: float | None
    last_sent_at: float | None
    last_task_id: str | None
    #: The last sent task's state from its result (``PENDING`` while none is stored).
    last_task_state: str | None
    sent: int
    missed: int
    last_missed_at: float | None
    last_missed_reason: str | None
    declared_by: list[str]


class LeaderView(msgspec.Struct, kw_only=True):
    worker: str
    token: int


class SchedulesReport(msgspec.Struct, kw_only=True):
    """Every declared schedule, and the worker leading them (None: nobody leads)."""

    leader: LeaderView | None
    schedules: list[ScheduleView]


def report(client: SyncClient, now: float | None = None) -> SchedulesReport:
    """Read the schedules, their states and the leader."""
    now = time.time() if now is None else now
    registrations = store.registrations_sync(client)
    chosen = merge(registrations)
    names = sorted(chosen)
    found = store.states_sync(client, {n: chosen[n].queue for n in names})
    task_ids = [found[n].last_task_id for n in names]
    result_states = _result_states(client, [t for t in task_ids if t])
    declared_by = {n: sorted(r.worker for r in registrations
                             if any(d.name == n for d in r.schedules)) for n in names}
    leader = store.leader_sync(client)
    return SchedulesReport(
        leader=LeaderView(worker=leader.worker, token=leader.token) if leader else None,
        schedules=[_view(chosen[n], found[n], result_states, declared_by[n], now)
                   for n in names],
    )


def _view(
    declared: Declaration, state: store.ScheduleState, result_states: dict[str, str],
    declared_by: list[str], now: float,
) -> ScheduleView:
    due = cadence.next_after(declared.cadence, max(int(now * 1000), state.last_tick_ms or 0))
    spec = declared.cadence
    return ScheduleView(
        name=declared.name, task=declared.task, queue=declared.queue, spec=str(spec),
        timezone=spec.tz if isinstance(spec, cadence.Cron) else "UTC",
        missed_policy=declared.missed, jitter=declared.jitter,
        args=declared.args, kwargs=declared.kwargs,
        next_run=_seconds(due), last_run=_seconds(state.last_run_ms),
        last_sent_at=_seconds(state.last_sent_ms), last_task_id=state.last_task_id,
        last_task_state=result_states.get(state.last_task_id or "") if state.last_task_id
        else None,
        sent=state.sent, missed=state.missed, last_missed_at=_seconds(state.last_missed_ms),
        last_missed_reason=state.last_missed_reason, declared_by=declared_by,
    )


def _seconds(ms: int | None) -> float | None:
    return None if ms is None else ms / 1000


def _result_states(client: SyncClient, task_ids: list[str]) -> dict[str, str]:
    """Each task's state from its stored result; ``PENDING`` when none is stored yet."""
    if not task_ids:
        return {}
    raws = result_store.stored_many_sync(client, task_ids)
    states = {}
    for task_id, raw in zip(task_ids, raws, strict=True):
        try:
            states[task_id] = results.decode(raw).status if raw else "PENDING"
        except PayloadError:  # results.decode turns every decode failure into this
            states[task_id] = "unreadable"
    return states
