"""The one interface observers of task runs hang off, and the dispatcher that keeps
them from taking the worker down.

Metrics, Celery task events, the running table and the outcome log line all watch the
executor through :class:`TaskObserver` (today the ``TaskRecorder`` in
``relier/observability/recorder.py`` is that observer and feeds the others). An observer
is never on the critical path: :class:`Observers` calls each one inside its own
``try``, so an observer that raises is logged (with its traceback, naming the observer
and the hook) and the delivery still settles, the slot is still freed and the worker
goes on — dramatiq's ``emit_before``/``emit_after`` isolation.

The other things the runtime reports are protocols here too, for the same reason:
:class:`RecoveryMetrics` (the resurrector), :class:`ScheduleMetrics` (the beat),
:class:`RunningTable` (what remote control reads of the running tasks) and
:class:`RunTracer` (the run span and its events).

It lives in ``runtime/`` (not ``observability/``) because the executor calls it and
layers import downwards only: observability implements the protocol, runtime owns it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from typing import TYPE_CHECKING, Final, Protocol, TypeAlias, runtime_checkable

if TYPE_CHECKING:
    from relier.app import App
    from relier.protocol.message import TaskMessage
    from relier.protocol.registry import RunningTask
    from relier.runtime.deadlines import Caller
    from relier.runtime.delivery import Delivery
    from relier.runtime.watchdog import Watchdog

log = logging.getLogger("relier.worker")


@runtime_checkable
class TaskObserver(Protocol):
    """Something that watches deliveries; it must not change what happens to them."""

    def started(self, delivery: Delivery) -> None:
        """The executor begins a delivery (before anything can settle it)."""

    def finished(self, delivery: Delivery) -> None:
        """The executor is done with a delivery, however it ended (``delivery.settled``)."""


class Observers:
    """Calls every observer's hook in turn; a failing one is logged and skipped."""

    def __init__(self, observers: Iterable[TaskObserver] = ()) -> None:
        # Named once here, not per delivery: this runs twice for every task.
        named = [(o, type(o).__qualname__) for o in observers]
        self._started = tuple((o.started, f"{name}.started") for o, name in named)
        self._finished = tuple((o.finished, f"{name}.finished") for o, name in named)

    def started(self, delivery: Delivery) -> None:
        for hook, what in self._started:
            guarded(hook, delivery, what=what)

    def finished(self, delivery: Delivery) -> None:
        for hook, what in self._finished:
            guarded(hook, delivery, what=what)


def guarded(hook: Callable[[Delivery], None], delivery: Delivery, *, what: str) -> None:
    """Call ``hook(delivery)``; log an exception instead of letting it reach the worker."""
    try:
        hook(delivery)
    except Exception:  # an observer's bug must never cost a task or the worker
        log.exception("observer %s failed on a delivery from %r; the task goes on",
                      what, delivery.queue)


class RecoveryMetrics(Protocol):
    """What the resurrector reports (``observability/metrics.py`` implements it)."""

    def recovery_latency(self, silent_for_s: float) -> None:
        """A dead worker's last beat was this long before its work was recovered."""

    def resurrected(self, queue: str, action: str) -> None:
        """One message moved off a dead worker: ``requeue`` or ``quarantine``."""


class ScheduleMetrics(Protocol):
    """What the schedule leader reports (``observability/metrics.py`` implements it)."""

    def schedule_sent(self, schedule: str) -> None:
        """One periodic run sent."""

    def schedule_missed(self, schedule: str, reason: str, count: int = 1) -> None:
        """Ticks not sent, and why (``outage``, ``admission``, ``invalid``)."""


class ActiveRun(Protocol):
    """A running task as remote control's ``active`` describes it."""

    @property
    def task_id(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def queue(self) -> str: ...
    @property
    def started_at(self) -> float: ...
    @property
    def argsrepr(self) -> str: ...
    @property
    def kwargsrepr(self) -> str: ...
    @property
    def redelivered(self) -> bool: ...


class RunningTable(Protocol):
    """What remote control reads of the tasks a worker runs and has run
    (``observability/recorder.py``'s ``TaskRecorder`` implements it)."""

    @property
    def totals(self) -> Mapping[str, int]:
        """Deliveries started, per task name, since the worker started."""

    def active(self) -> Sequence[ActiveRun]:
        """The tasks running now."""


class RunTracer(Protocol):
    """How a run is traced (``observability/tracing.py``'s ``RunTracing`` implements it,
    with OpenTelemetry when the extra is installed and ``tracing`` is on)."""

    def run_span(self, message: TaskMessage, delivery: Delivery,
                 worker_id: str) -> AbstractContextManager[object]:
        """The span around one run of a task and its settle."""

    def event(self, name: str,
              attributes: Mapping[str, str | int | float] | None = None) -> None:
        """Add an event to the span of the task running in this context, if traced."""


class _NoTracing:
    """Traces nothing: the executor's tracer when the worker gives it none."""

    def run_span(self, message: TaskMessage, delivery: Delivery,
                 worker_id: str) -> AbstractContextManager[object]:
        return nullcontext()

    def event(self, name: str,
              attributes: Mapping[str, str | int | float] | None = None) -> None:
        return None


#: A tracer that records nothing.
NO_TRACING: Final[RunTracer] = _NoTracing()


class ChildMetrics(Protocol):
    """The one ``/metrics`` of a supervisor's children (``observability/supervised.py``'s
    ``SupervisedMetrics`` implements it)."""

    def start(self) -> None:
        """Start serving (before the first child starts)."""

    def child_env(self) -> dict[str, str]:
        """What each child's environment needs so its metrics are served."""

    def forget(self, pid: int) -> None:
        """A child exited: drop its live gauges."""

    def close(self) -> None:
        """Stop serving (after the last child stopped)."""


class Recorder(TaskObserver, RunningTable, Protocol):
    """The worker's recorder: it watches every delivery, keeps the running table the
    heartbeat publishes (``changed`` is set when it changes) and remote control reads."""

    changed: threading.Event

    def running(self) -> list[RunningTask]:
        """The table of running tasks, as the heartbeat publishes it."""


class ReportedMetrics(RecoveryMetrics, ScheduleMetrics, Protocol):
    """The metrics a worker's resurrector and beat report to."""


class WorkerTelemetry(Protocol):
    """Everything a worker reports to, set up in one place (``observability/telemetry.py``'s
    ``Telemetry`` implements it; the CLI and ``relier.testing`` hand it to the worker)."""

    @property
    def recorder(self) -> Recorder: ...

    @property
    def metrics(self) -> ReportedMetrics | None: ...

    @property
    def tracer(self) -> RunTracer: ...

    def follow(self, caller: Caller, watchdog: Watchdog) -> None:
        """Sample the timeout and stall counts ``caller`` and ``watchdog`` keep."""

    async def run(self) -> None:
        """The background work (sampling, event publishing), until cancelled."""

    async def aclose(self) -> None:
        """Stop serving and publishing."""


#: Builds a worker's telemetry from its App, its id and a count of the tasks it runs.
TelemetryFactory: TypeAlias = "Callable[[App, str, Callable[[], int]], WorkerTelemetry]"
