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
import redis

from relier.broker import as_bytes
from relier.observability.schedules import SchedulesReport
from relier.observability.schedules import report as schedule_report
from relier.protocol import hostile, keys, registry, results, scripts
from relier.protocol import message as wire
from relier.protocol.registry import RunningTask, WorkerInfo

#: A worker whose heartbeat key is gone but which the resurrector has not handled yet.
SILENT: Final = "silent"
#: Celery's default queue: ``send_task``/``delay`` without a route go there.
CELERY_DEFAULT_QUEUE: Final = "celery"
#: The exchange Celery producers declare their default queue's binding under.
_CELERY_EXCHANGE: Final = "celery"


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


def _text(value: Any) -> str:
    return as_bytes(value).decode(errors="replace")


def _counts(raw: dict[Any, Any]) -> dict[str, int]:
    """A count-by-reason hash; a field that is not a number (written by hand) is skipped,
    and the list/count mismatch that leaves makes the reader rebuild the counts."""
    counts = {}
    for k, v in raw.items():
        try:
            counts[_text(k)] = int(v)
        except ValueError:
            continue
    return counts


class Inspector:
    """Reads Relier's state through a blocking client."""

    def __init__(self, client: redis.Redis) -> None:
        #: The blocking client every read goes through.
        self.client = client
        # redis-py's Script reloads itself after NOSCRIPT.
        self._recount = client.register_script(scripts.source("dlq_recount"))

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
        with self.client.pipeline(transaction=False) as pipe:
            pipe.smembers(keys.KNOWN_QUEUES)
            pipe.smembers(keys.pidbox_bindings(_CELERY_EXCHANGE))
            relier_queues, bindings = pipe.execute()
        names = {_text(q) for q in relier_queues}
        for member in bindings:
            parts = as_bytes(member).split(keys.PRIORITY_SEPARATOR.encode())
            if len(parts) == 3 and parts[2]:
                names.add(parts[2].decode(errors="replace"))
        return sorted(names)

    def queues(self, entries: list[WorkerInfo] | None = None) -> list[QueueStats]:
        """Every known queue's numbers, read in one pipelined round trip."""
        names = self.known_queues()
        entries = self.registry_entries() if entries is None else entries
        holders = {q: [w.id for w in entries if q in w.queues] for q in names}
        with self.client.pipeline(transaction=False) as pipe:
            for q in names:
                for name in keys.queue_lists(q):
                    pipe.llen(name)
                    pipe.lindex(name, -1)
                pipe.zcard(keys.delayed(q))
                pipe.llen(keys.dead_letters(q))
                pipe.hgetall(keys.dlq_reasons(q))
                for worker in holders[q]:
                    pipe.llen(keys.processing(q, worker))
            replies = iter(pipe.execute())
        now = time.time()
        stats: list[QueueStats] = []
        for q in names:
            depth, ages = 0, []
            for _ in range(4):
                depth += int(next(replies))
                sent = _sent_at(next(replies))
                if sent is not None:
                    ages.append(max(0.0, now - sent))
            delayed, dlq = int(next(replies)), int(next(replies))
            reasons = _counts(next(replies))
            in_flight = sum(int(next(replies)) for _ in holders[q])
            if sum(reasons.values()) != dlq:
                reasons = self._consistent_reasons(q)
            stats.append(QueueStats(
                name=q, depth=depth, in_flight=in_flight, delayed=delayed,
                dlq=sum(reasons.values()), oldest_age=max(ages) if ages else None,
                dlq_reasons={k: v for k, v in reasons.items() if v},
            ))
        return stats

    def _consistent_reasons(self, queue: str) -> dict[str, int]:
        """The DLQ's counts by reason, rebuilt if they disagree with the list (entries
        written before the counts existed, or by an older worker)."""
        with self.client.pipeline(transaction=True) as pipe:
            pipe.llen(keys.dead_letters(queue))
            pipe.hgetall(keys.dlq_reasons(queue))
            size, raw = pipe.execute()
        reasons = _counts(raw)
        if sum(reasons.values()) != int(size):
            self._recount(keys=[keys.dead_letters(queue), keys.dlq_reasons(queue)])
            raw = self.client.hgetall(keys.dlq_reasons(queue))
            reasons = _counts(raw)
        return reasons

    def queue_counters(self, names: Sequence[str]) -> dict[str, dict[str, int]]:
        """The counters the scripts keep per queue (fetched, rejected, idempotent_hits)."""
        with self.client.pipeline(transaction=False) as pipe:
            for q in names:
                pipe.hgetall(keys.stats(q))
            replies = pipe.execute()
        counters: dict[str, dict[str, int]] = {}
        for q, raw in zip(names, replies, strict=True):
            values: dict[str, int] = {}
            for k, v in raw.items():
                try:
                    values[_text(k)] = int(float(_text(v)))
                except (ValueError, OverflowError):  # hand-written garbage: not a counter
                    continue
            counters[q] = values
        return counters

    def workers(self) -> list[WorkerView]:
        return self.worker_views(self.registry_entries())

    def registry_entries(self) -> list[WorkerInfo]:
        """Every registered worker, live ones first, oldest first."""
        entries = registry.readable(self.client.hgetall(keys.WORKERS))
        return sorted(entries, key=lambda w: (w.state == registry.DEAD, w.started_at))

    def worker_views(self, entries: list[WorkerInfo]) -> list[WorkerView]:
        """The entries with their state checked against their heartbeat keys."""
        with self.client.pipeline(transaction=False) as pipe:
            for w in entries:
                pipe.exists(keys.heartbeat(w.id))
            beating = pipe.execute()
        views = []
        for w, alive in zip(entries, beating, strict=True):
            state = w.state
            if state != registry.DEAD and not alive:
                state = SILENT
            views.append(WorkerView(
                id=w.id, host=w.host, pid=w.pid, queues=w.queues, concurrency=w.concurrency,
                in_flight=w.in_flight if state != registry.DEAD else 0,
                started_at=w.started_at, last_heartbeat=w.last_heartbeat, state=state,
                died_at=w.died_at, resurrected=w.resurrected,
            ))
        return views

    def running_tables(self, entries: list[WorkerInfo]) -> dict[str, list[RunningTask]]:
        """Each worker's last published table of running tasks (one pipelined read)."""
        with self.client.pipeline(transaction=False) as pipe:
            for w in entries:
                pipe.get(keys.running(w.id))
            found = pipe.execute()
        return {w.id: registry.decode_running(raw) if raw else []
                for w, raw in zip(entries, found, strict=True)}

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
        with self.client.pipeline(transaction=False) as pipe:
            for _, task_id in found:
                pipe.get(keys.result(task_id))
            stored = pipe.execute()
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
