"""Reading Relier's state out of Redis into plain data, for `inspect`, `top`, `queues` and
the metrics collector. Nothing here prints, and nothing here changes a queue.

Where each fact comes from:

* queues: the lists' lengths, the right end of each list (the next message to run; its
  ``relier_sent_at`` header gives its age), the delayed set, the processing lists of the
  registered workers, the DLQ and its count-by-reason hash;
* workers: the registry entries, and whether each heartbeat key still exists;
* running tasks: the table each worker publishes with every heartbeat and within about
  0.1 s of a change (a task started or ended), coalesced;
* one task: see :mod:`relier.observability.whereabouts`.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any, Final

import msgspec

from relier.observability.schedules import SchedulesReport
from relier.observability.schedules import report as schedule_report
from relier.protocol import hostile, registry, results
from relier.protocol import message as wire
from relier.protocol.registry import RunningTask, WorkerInfo
from relier.store import admin, views
from relier.store import registry as registry_store
from relier.store import results as result_store
from relier.store.clients import SyncClient
from relier.store.runner import perform_sync

#: A worker whose heartbeat key is gone but which the resurrector has not handled yet.
SILENT: Final = "silent"
#: Celery's default queue: ``send_task``/``delay`` without a route go there.
CELERY_DEFAULT_QUEUE: Final = "celery"


class QueueStats(msgspec.Struct, kw_only=True):
    """One queue, as ``relier inspect --json`` and ``relier queues --json`` show it."""

    name: str
    #: Messages waiting, all priority lists together.
    depth: int
    #: Messages workers hold in their processing lists.
    in_flight: int
    #: Messages waiting for their time in the delayed set (eta, countdown, retry).
    delayed: int
    dlq: int
    #: Seconds since the next message to run was sent (None: empty, or not sent by Relier).
    oldest_age: float | None
    dlq_reasons: dict[str, int] = msgspec.field(default_factory=dict)


class WorkerView(msgspec.Struct, kw_only=True):
    """One registered worker; ``state`` is alive, stopping, silent or dead."""

    id: str
    host: str
    pid: int
    queues: list[str]
    concurrency: int
    in_flight: int
    started_at: float
    last_heartbeat: float
    state: str
    died_at: float | None = None
    #: How many of its tasks the resurrector recovered when it died.
    resurrected: int = 0


class RunningView(msgspec.Struct, kw_only=True):
    """A task running now, as its worker's last heartbeat reported it."""

    task_id: str
    task: str
    queue: str
    worker: str
    started_at: float
    runtime: float
    attempt: int
    resurrections: int


class ResurrectedView(msgspec.Struct, kw_only=True):
    """A task taken back from a dead worker, and where it is now."""

    task_id: str
    task: str | None
    queue: str | None
    from_worker: str
    died_at: float | None
    #: ``running on <worker>``, ``succeeded``, ``failed``, ... or ``pending``.
    now: str


class Snapshot(msgspec.Struct, kw_only=True):
    """Everything ``relier inspect`` shows, at one moment."""

    taken_at: float
    queues: list[QueueStats]
    workers: list[WorkerView]
    running: list[RunningView]
    resurrected: list[ResurrectedView]
    #: One-line warnings: queues with waiting messages that no live worker consumes.
    hints: list[str] = msgspec.field(default_factory=list)
    #: The periodic schedules and their leader (``relier schedules``).
    schedules: SchedulesReport | None = None


class _SentAt(msgspec.Struct):
    headers: dict[str, Any] = msgspec.field(default_factory=dict)


_sent_at_decoder: Final = msgspec.json.Decoder(_SentAt)


def _sent_at(raw: bytes | None) -> float | None:
    if raw is None:
        return None
    found = hostile.read_or_none(_sent_at_decoder.decode, raw)
    value = found.headers.get(wire.SENT_AT_HEADER) if found is not None else None
    return float(value) if isinstance(value, int | float) else None


class Inspector:
    """Reads Relier's state through a blocking client."""

    def __init__(self, client: SyncClient) -> None:
        #: The blocking client every read goes through.
        self.client = client
        # redis-py's Script reloads itself after NOSCRIPT.

    # -- the whole picture -------------------------------------------------------------

    def snapshot(self) -> Snapshot:
        entries = self.registry_entries()
        workers = self.worker_views(entries)
        tables = self.running_tables(entries)
        running = self._running(workers, tables)
        queues = self.queues(entries)
        return Snapshot(
            taken_at=time.time(),
            queues=queues,
            workers=workers,
            running=running,
            resurrected=self._resurrected(entries, tables, running),
            hints=unconsumed_hints(queues, workers),
            schedules=schedule_report(self.client),
        )

    def known_queues(self) -> list[str]:
        """Queues Relier used, and those Celery producers declared on their default
        exchange (``celery``, where ``delay()`` goes by default)."""
        return views.known_queues_sync(self.client)

    def queues(self, entries: list[WorkerInfo] | None = None) -> list[QueueStats]:
        """Every known queue's numbers, read in one pipelined round trip."""
        names = self.known_queues()
        entries = self.registry_entries() if entries is None else entries
        holders = {q: [w.id for w in entries if q in w.queues] for q in names}
        now = time.time()
        stats: list[QueueStats] = []
        for reading in views.queue_readings_sync(self.client, holders):
            ages = [max(0.0, now - sent) for sent in map(_sent_at, reading.heads)
                    if sent is not None]
            reasons = reading.dlq_reasons
            if sum(reasons.values()) != reading.dlq:
                reasons = self._consistent_reasons(reading.name)
            stats.append(QueueStats(
                name=reading.name, depth=reading.depth, in_flight=reading.in_flight,
                delayed=reading.delayed, dlq=sum(reasons.values()),
                oldest_age=max(ages) if ages else None,
                dlq_reasons={k: v for k, v in reasons.items() if v},
            ))
        return stats

    def _consistent_reasons(self, queue: str) -> dict[str, int]:
        """The DLQ's counts by reason, rebuilt if they disagree with the list (entries
        written before the counts existed, or by an older worker)."""
        count = views.dead_letter_count_sync(self.client, queue)
        if not count.consistent:
            perform_sync(self.client, admin.recount_dead_letters(dlq_queue=queue))
            count = views.dead_letter_count_sync(self.client, queue)
        return count.reasons

    def queue_counters(self, names: Sequence[str]) -> dict[str, dict[str, int]]:
        """The counters the scripts keep per queue (fetched, rejected, idempotent_hits)."""
        return views.queue_counters_sync(self.client, names)

    def workers(self) -> list[WorkerView]:
        return self.worker_views(self.registry_entries())

    def registry_entries(self) -> list[WorkerInfo]:
        """Every registered worker, live ones first, oldest first."""
        entries = registry_store.entries_sync(self.client).workers
        return sorted(entries, key=lambda w: (w.state == registry.DEAD, w.started_at))

    def worker_views(self, entries: list[WorkerInfo]) -> list[WorkerView]:
        """The entries with their state checked against their heartbeat keys."""
        beating = registry_store.beating_sync(self.client, [w.id for w in entries])
        views_out = []
        for w, alive in zip(entries, beating, strict=True):
            state = w.state
            if state != registry.DEAD and not alive:
                state = SILENT
            views_out.append(WorkerView(
                id=w.id, host=w.host, pid=w.pid, queues=w.queues, concurrency=w.concurrency,
                in_flight=w.in_flight if state != registry.DEAD else 0,
                started_at=w.started_at, last_heartbeat=w.last_heartbeat, state=state,
                died_at=w.died_at, resurrected=w.resurrected,
            ))
        return views_out

    def running_tables(self, entries: list[WorkerInfo]) -> dict[str, list[RunningTask]]:
        """Each worker's last published table of running tasks (one pipelined read)."""
        return registry_store.running_tables_sync(self.client, [w.id for w in entries])

    @staticmethod
    def _running(
        views: list[WorkerView], tables: dict[str, list[RunningTask]]
    ) -> list[RunningView]:
        now = time.time()
        running = [
            RunningView(task_id=t.task_id, task=t.task, queue=t.queue, worker=view.id,
                        started_at=t.started_at, runtime=max(0.0, now - t.started_at),
                        attempt=t.attempt, resurrections=t.resurrections)
            for view in views if view.state != registry.DEAD
            for t in tables.get(view.id, [])
        ]
        return sorted(running, key=lambda r: r.started_at)

    def _resurrected(
        self, entries: list[WorkerInfo], tables: dict[str, list[RunningTask]],
        running: list[RunningView],
    ) -> list[ResurrectedView]:
        running_on = {r.task_id: r.worker for r in running}
        found: list[tuple[WorkerInfo, str]] = [
            (w, task_id) for w in entries if w.state == registry.DEAD
            for task_id in w.resurrected_ids
        ]
        stored = result_store.stored_many_sync(self.client, [t for _, t in found])
        views_out = []
        for (w, task_id), raw in zip(found, stored, strict=True):
            # Its name and queue, from the dead worker's last published table.
            known = next((t for t in tables.get(w.id, []) if t.task_id == task_id), None)
            if task_id in running_on:
                now = f"running on {running_on[task_id]}"
            elif raw is not None:
                meta = hostile.read_or_none(results.decode, raw)
                now = meta.status.lower() if meta is not None else "result unreadable"
            else:
                now = "pending"
            views_out.append(ResurrectedView(
                task_id=task_id, task=known.task if known else None,
                queue=known.queue if known else None, from_worker=w.id,
                died_at=w.died_at, now=now,
            ))
        return views_out


def unconsumed_hints(queues: Sequence[QueueStats], workers: Sequence[WorkerView]) -> list[str]:
    """One line per queue with waiting messages that no live worker consumes."""
    consumed = {q for w in workers if w.state == "alive" for q in w.queues}
    hints = []
    for q in queues:
        if not q.depth or q.name in consumed:
            continue
        line = (f"queue {q.name!r} has {q.depth} waiting message(s) and no live worker "
                f"consumes it: start a worker with -Q {q.name}")
        if q.name == CELERY_DEFAULT_QUEUE:
            line += (" (Celery's default queue: send_task/delay without a queue go there; "
                     "add it to -Q, or route those tasks to your queues)")
        hints.append(line)
    return hints
