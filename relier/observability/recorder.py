"""What a worker notes about each task it runs: the running table, one log line per
outcome, the outcome metrics and (with ``--events``) Celery's task events.

The executor calls :meth:`TaskRecorder.started` when it begins a delivery and
:meth:`TaskRecorder.finished` when it is done with it, whatever happened; the outcome
is read from how the delivery settled (:class:`relier.runtime.delivery.Settled`), so the
executor's many paths need no calls of their own.

The running table is read by the heartbeat thread, which publishes it with every beat
and soon after each change (coalesced, see heartbeat.py): ``relier inspect`` learns what
runs within a fraction of a second, without a Redis write per task. A lock guards it
because two threads use it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any, Final

import msgspec

from relier.observability.events import EventSender
from relier.observability.metrics import WorkerMetrics
from relier.protocol import hostile, registry
from relier.protocol import message as wire
from relier.protocol.registry import RunningTask
from relier.runtime.delivery import Delivery, Settled

log = logging.getLogger("relier.task")

#: The settle that ended a delivery -> its outcome, for dead-letter reasons with a name
#: of their own; any other reason is its own outcome (``expired``, ``not_json``, ...).
_REASON_OUTCOMES: Final = {"exception": "failure", "hard_timeout": "timeout"}
#: Outcomes worth a warning. Other dead letters (``expired``, ``not_json``, ...) are
#: errors; successes and deferrals (``scheduled``, ``rate_limited``, ...) are info.
_WARN: Final = frozenset({"failure", "timeout", "stale", "interrupted", "retry"})
#: Outcomes the executor has already logged with their cause (a retry with its real
#: delay, a deferral, a payload it could not read): one line per cause, so the outcome
#: line for these is only a debug line.
_EXPLAINED: Final = frozenset({"retry", "deferred", "payload_invalid", "not_json",
                               "unknown_task", "version_too_new", "expired"})


def outcome_of(settled: Settled | None) -> str:
    """``success``, ``failure``, ``timeout``, ``retry``, ``deferred``, ``stale``, ...

    ``already_done``: an idempotent call whose earlier run succeeded, acked without running.
    ``interrupted``: the delivery never settled (cancelled at shutdown, its message given
    back to its queue; or its settle was lost and Phoenix will recover it).
    ``stale``: a newer delivery of the task owns it, so nothing of this run was kept.
    """
    if settled is None:
        return "interrupted"
    if not settled.accepted:
        return "stale"
    if settled.kind == "ack":
        return settled.reason or "success"
    if settled.kind == "schedule":
        return settled.reason or "deferred"
    reason = settled.reason or "dead_letter"
    return _REASON_OUTCOMES.get(reason, reason)


class _Headers(msgspec.Struct):
    headers: dict[str, Any] = msgspec.field(default_factory=dict)


_headers_decoder: Final = msgspec.json.Decoder(_Headers)


class _Facts:
    """What one delivery is, decoded once from its headers when it starts."""

    __slots__ = ("argsrepr", "attempt", "kwargsrepr", "name", "queue", "resurrections",
                 "task_id")

    def __init__(self, delivery: Delivery) -> None:
        found = hostile.read_or_none(_headers_decoder.decode, delivery.raw)
        headers = found.headers if found is not None else {}
        task_id, name = headers.get("id"), headers.get("task")
        if not isinstance(task_id, str) or not isinstance(name, str):
            task_id, name, headers = self._from_v1(delivery.raw)
        retries = headers.get("retries")
        resurrections = headers.get(wire.RESURRECTIONS_HEADER)
        origin = headers.get(wire.ORIGIN_QUEUE_HEADER)
        self.task_id: str = task_id
        self.name: str = name
        self.attempt = (retries if isinstance(retries, int) else 0) + 1
        self.resurrections = resurrections if isinstance(resurrections, int) else 0
        self.queue: str = origin if isinstance(origin, str) and origin else delivery.queue
        self.argsrepr = str(headers.get("argsrepr", ""))
        self.kwargsrepr = str(headers.get("kwargsrepr", ""))

    @staticmethod
    def _from_v1(raw: bytes) -> tuple[str, str, dict[str, Any]]:
        """Protocol v1 keeps id and name in the body; an undecodable message has neither."""
        try:
            message = wire.decode(raw)
        except Exception:
            return "-", "?", {}
        return message.id, message.task, {"retries": message.retries}


@dataclass(frozen=True, slots=True)
class ActiveTask:
    """A running task as remote control's ``active`` describes it."""

    task_id: str
    name: str
    queue: str
    started_at: float
    argsrepr: str
    kwargsrepr: str
    redelivered: bool


class TaskRecorder:
    """The running table and the per-outcome log line, metrics and events."""

    def __init__(
        self,
        worker_id: str,
        metrics: WorkerMetrics | None = None,
        events: EventSender | None = None,
    ) -> None:
        self._worker_id = worker_id
        self._metrics = metrics
        self._events = events
        self._lock = threading.Lock()
        self._running: dict[int, tuple[Delivery, _Facts]] = {}
        #: Deliveries finished, by task name (remote control's ``stats``).
        self.totals: Counter[str] = Counter()
        #: Set whenever the running table changes (the heartbeat thread publishes it then).
        self.changed = threading.Event()

    def started(self, delivery: Delivery) -> None:
        """A delivery begins (call once, before anything can settle it)."""
        facts = _Facts(delivery)
        with self._lock:
            self._running[id(delivery)] = (delivery, facts)
        self.changed.set()
        if self._events is not None:
            self._events.task("received", facts.task_id, name=facts.name,
                              args=facts.argsrepr, kwargs=facts.kwargsrepr,
                              retries=facts.attempt - 1, root_id=None, parent_id=None,
                              eta=None, expires=None)
            self._events.task("started", facts.task_id)

    def finished(self, delivery: Delivery) -> None:
        """The delivery is over: log its outcome and count it."""
        with self._lock:
            _, facts = self._running.pop(id(delivery), (delivery, None))
        self.changed.set()
        if facts is None:
            return
        outcome = outcome_of(delivery.settled)
        self.totals[facts.name] += 1
        duration = time.monotonic() - delivery.taken_mono
        self._log(facts, outcome, duration, delivery.settled)
        if self._metrics is not None:
            self._metrics.task_ended(facts.name, facts.queue, outcome, duration)
        if self._events is not None:
            self._send_outcome(facts, outcome, duration, delivery.settled)

    def running(self) -> list[RunningTask]:
        """The tasks running now, oldest first (at most ``MAX_PUBLISHED_RUNNING``)."""
        with self._lock:
            entries = list(self._running.values())
        entries.sort(key=lambda pair: pair[0].taken_at)
        return [
            RunningTask(task_id=f.task_id, task=f.name, queue=f.queue,
                        started_at=d.taken_at, attempt=f.attempt,
                        resurrections=f.resurrections)
            for d, f in entries[: registry.MAX_PUBLISHED_RUNNING]
        ]

    def active(self) -> list[ActiveTask]:
        """Every task running now, oldest first, with its arguments' repr."""
        with self._lock:
            entries = sorted(self._running.values(), key=lambda pair: pair[0].taken_at)
        return [ActiveTask(task_id=f.task_id, name=f.name, queue=f.queue,
                           started_at=d.taken_at, argsrepr=f.argsrepr,
                           kwargsrepr=f.kwargsrepr, redelivered=f.resurrections > 0)
                for d, f in entries]

    def _log(self, facts: _Facts, outcome: str, duration: float,
             settled: Settled | None) -> None:
        error = settled.error if settled is not None else None
        if outcome == "stale":
            error = "a newer delivery owns this task; result discarded"
        if outcome in _EXPLAINED:
            level = logging.DEBUG
        elif outcome in _WARN:
            level = logging.WARNING
        elif settled is not None and settled.kind == "dead_letter":
            level = logging.ERROR
        else:
            level = logging.INFO
        text = "task %s[%s] %s in %.3fs (attempt %d, queue %s)"
        args: tuple[Any, ...] = (facts.name, facts.task_id, outcome, duration, facts.attempt,
                                 facts.queue)
        if error:
            text += ": %s"
            args += (error,)
        log.log(level, text, *args, extra={
            "task_id": facts.task_id, "task": facts.name, "attempt": facts.attempt,
            "duration": round(duration, 6), "outcome": outcome, "queue": facts.queue,
            "worker": self._worker_id, "error": error,
        })

    def _send_outcome(self, facts: _Facts, outcome: str, duration: float,
                      settled: Settled | None) -> None:
        assert self._events is not None
        events = self._events
        events.processed += 1
        error = settled.error if settled is not None else None
        if outcome == "success":
            events.task("succeeded", facts.task_id, result="", runtime=duration)
        elif outcome == "expired":
            events.task("revoked", facts.task_id, terminated=False, signum=None, expired=True)
        elif outcome in ("revoked", "terminated"):
            events.task("revoked", facts.task_id, terminated=outcome == "terminated",
                        signum=None, expired=False)
        elif outcome == "stale":
            return  # a newer delivery of the task reports for it
        elif settled is None or settled.kind == "schedule":
            # It will run later (retry, deferral, eta, rate limit, shutdown give-back).
            events.task("retried", facts.task_id, exception=error or outcome, traceback="")
        else:
            events.task("failed", facts.task_id, exception=error or outcome, traceback="")
