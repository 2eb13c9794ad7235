"""Where one task is now, and what Redis remembers of its past (`relier inspect task ID`).

It looks in every place the task's message can be (a worker's processing list, a queue's
lists, the delayed set), in the DLQ, at its result, and in the dead workers' records of
what was resurrected from them. Nothing here prints, and nothing here changes a queue.
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

import msgspec

from relier.errors import PayloadError
from relier.observability.inspect import SILENT, Inspector
from relier.protocol import dead_letter, hostile, registry, results
from relier.protocol import message as wire
from relier.protocol.registry import WorkerInfo
from relier.store import finder
from relier.store import results as result_store


class HistoryEvent(msgspec.Struct, kw_only=True):
    at: float | None
    event: str
    detail: str = ""


class TaskReport(msgspec.Struct, kw_only=True):
    """Where one task is and what is known of its past, from Redis.

    ``state``: queued, delayed, retrying, running, awaiting_resurrection, dead_lettered,
    succeeded, failed, revoked, or unknown (no trace in Redis: never sent here, or its
    result expired).
    """

    task_id: str
    state: str
    where: str
    task: str | None = None
    queue: str | None = None
    worker: str | None = None
    attempt: int | None = None
    resurrections: int = 0
    #: From its stored result: the return value (or a custom state's meta), the error,
    #: and seconds from taking the message to its outcome (Relier workers record it).
    result: Any = None
    error: str | None = None
    duration: float | None = None
    history: list[HistoryEvent] = msgspec.field(default_factory=list)


class TaskLocator:
    """Finds one task in Redis, through an :class:`Inspector`'s client."""

    def __init__(self, inspector: Inspector) -> None:
        self._inspector = inspector
        self._client = inspector.client
        # redis-py's Script reloads itself after NOSCRIPT.

    def report(self, task_id: str) -> TaskReport:
        """Where one task is now, and what Redis remembers of its past."""
        report = TaskReport(task_id=task_id, state="unknown",
                            where="no trace in Redis (never sent here, or its result expired)")
        history: list[HistoryEvent] = []
        entries = self._inspector.registry_entries()
        message = self._locate(task_id, entries, report, history)
        if message is not None:
            self._describe_message(message, report, history)
        for w in entries:
            if task_id in w.resurrected_ids:
                report.resurrections = max(report.resurrections, 1)
                history.append(HistoryEvent(at=w.died_at, event="resurrected",
                                            detail=f"worker {w.id} died; moved to re-queue"))
        entry = self._dead_letter(task_id)
        if entry is not None:
            report.task = report.task or entry.task
            report.queue = report.queue or entry.queue
            history.append(HistoryEvent(
                at=entry.failed_at, event="dead_lettered",
                detail=f"{entry.reason}: {entry.error} (attempts {entry.attempts}, "
                       f"resurrections {entry.resurrections}, worker {entry.worker})"))
            if report.state == "unknown":
                report.state, report.where = "dead_lettered", f"in the DLQ of {entry.queue!r}"
                report.attempt = report.attempt or entry.attempts
                report.resurrections = max(report.resurrections, entry.resurrections)
        self._read_result(task_id, report, history)
        report.history = sorted(history, key=lambda e: (e.at is None, e.at or 0.0))
        return report

    def _read_result(self, task_id: str, report: TaskReport,
                     history: list[HistoryEvent]) -> None:
        raw = result_store.stored_sync(self._client, task_id)
        if raw is None:
            return
        try:
            meta = results.decode(raw)
        except PayloadError as exc:
            history.append(HistoryEvent(at=None, event="result",
                                        detail=f"unreadable result ({exc})"))
            return
        history.append(HistoryEvent(at=_iso_to_unix(meta.date_done),
                                    event=meta.status.lower(), detail=_result_detail(meta)))
        report.task = report.task or results.text_of(meta.relier_task) or \
            results.text_of(meta.name)
        report.queue = report.queue or results.text_of(meta.queue)
        runtime = meta.relier_runtime
        if isinstance(runtime, int | float) and not isinstance(runtime, bool):
            report.duration = float(runtime)
        if meta.status in results.EXCEPTION_STATES:
            report.error = _result_detail(meta)
        else:
            report.result = meta.result
        if report.state == "unknown":
            report.state = meta.status.lower()
            report.where = f"finished ({meta.status})" if meta.ready else \
                f"last reported state {meta.status}"

    def _locate(
        self, task_id: str, entries: list[WorkerInfo], report: TaskReport,
        history: list[HistoryEvent],
    ) -> wire.TaskMessage | None:
        """Find the task's message: held by a worker, waiting, or delayed."""
        views = self._inspector.worker_views(entries)
        for w, view in zip(entries, views, strict=True):
            for q in w.queues:
                found = self._message_in(finder.processing(q, w.id), task_id)
                if found is None:
                    continue
                message, _, _ = found
                if view.state in (registry.DEAD, SILENT):
                    report.state = "awaiting_resurrection"
                    report.where = f"held by {w.id}, which stopped beating; the resurrector " \
                                   f"will move it to re-queue"
                else:
                    table = self._inspector.running_tables([w])[w.id]
                    since = next((t.started_at for t in table if t.task_id == task_id), None)
                    report.state, report.worker = "running", w.id
                    report.where = f"running on {w.id}" + (
                        f" since {_clock(since)}" if since else "")
                    history.append(HistoryEvent(at=since, event="running",
                                                detail=f"on {w.id} (pid {w.pid}, {w.host})"))
                return message
        for q in self._inspector.known_queues():
            for place in finder.queue_lists(q):
                found = self._message_in(place, task_id)
                if found is not None:
                    message, index, _ = found
                    ahead = finder.length_sync(self._client, place) - index - 1
                    report.state = "queued"
                    report.where = f"waiting in {q!r} with {ahead} message(s) ahead of it"
                    return message
            found = self._message_in(finder.delayed(q), task_id)
            if found is not None:
                message, _, due = found
                report.state = "retrying" if message.retries else "delayed"
                report.where = f"in the delayed set of {q!r} until {_clock(due)}"
                history.append(HistoryEvent(at=due, event="due", detail=f"moves to {q!r}"))
                return message
        return None

    def _message_in(
        self, place: finder.Place, task_id: str
    ) -> tuple[wire.TaskMessage, int, float] | None:
        """The message with this id (its own id, not e.g. a child's root_id) in a list or
        sorted set: (message, index, due time in seconds)."""
        for hit in finder.hits(self._client, place, task_id):
            try:
                message = wire.decode(hit.element)
            except Exception:  # undecodable: not a message this report can describe
                continue
            if message.id == task_id:
                return message, hit.index, hit.due_s
        return None

    def _dead_letter(self, task_id: str) -> dead_letter.DeadLetter | None:
        for q in self._inspector.known_queues():
            for hit in finder.hits(self._client, finder.dead_letters(q), task_id):
                entry = hostile.read_or_none(dead_letter.decode, hit.element)
                if entry is not None and entry.task_id == task_id:
                    return entry
        return None

    @staticmethod
    def _describe_message(
        message: wire.TaskMessage, report: TaskReport, history: list[HistoryEvent]
    ) -> None:
        report.task, report.queue = message.task, message.origin_queue
        report.attempt = message.retries + 1
        report.resurrections = max(report.resurrections, message.resurrections)
        sent = message.headers.get(wire.SENT_AT_HEADER)
        if isinstance(sent, int | float):
            history.append(HistoryEvent(at=float(sent), event="sent",
                                        detail=f"to {message.origin_queue!r}"))
        if message.retries:
            history.append(HistoryEvent(at=None, event="retried",
                                        detail=f"{message.retries} earlier attempt(s) failed"))
        deferred = message.headers.get(wire.FIRST_DEFERRED_HEADER)
        if isinstance(deferred, int | float):
            history.append(HistoryEvent(at=float(deferred), event="deferred",
                                        detail="first deferred (unknown task or version)"))


def _iso_to_unix(text: str | None) -> float | None:
    if not text:
        return None
    try:
        return datetime.fromisoformat(text).timestamp()
    except ValueError:
        return None


def _clock(moment: float) -> str:
    """Local time with its zone: a bare time is ambiguous across hosts."""
    return time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime(moment))


def _result_detail(meta: results.ResultMeta) -> str:
    if meta.status in results.EXCEPTION_STATES:
        exc_type, _, args = meta.exception
        return f"{exc_type}: {', '.join(map(str, args))}"
    return "result stored"
