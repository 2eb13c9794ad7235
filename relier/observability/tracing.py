"""OpenTelemetry traces of the worker's runs (``pip install 'relier[otel]'``).

OpenTelemetry itself is reached through :mod:`relier.otel` (the one module importing
it, guarded, with the producer's span): without the extra, with the ``tracing`` setting
off, or with no tracer provider configured, every hook here is a no-op.

Each run is a ``CONSUMER`` span ``run/<task>``, child of the context in its message's
headers (where a Relier or Celery-instrumented producer put it), current while the task
body runs (so what the task pushes or calls joins the trace). Attributes: task name, id,
attempt, resurrections, queue, worker, outcome. Events: ``relier.resurrected`` (the run
follows a dead worker's), ``relier.soft_timeout``, ``relier.retry_scheduled``,
``relier.dead_lettered``. A retry or a resurrection keeps the message's headers, so
every run of one push is a child of that push's span: the trace shows each attempt side
by side.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import TYPE_CHECKING, Any, Final

from relier import otel
from relier.otel import AVAILABLE as AVAILABLE
from relier.otel import NO_HEADERS as NO_HEADERS
from relier.otel import enabled as enabled
from relier.otel import push_span as push_span
from relier.otel import use_tracer_provider as use_tracer_provider

if TYPE_CHECKING:
    from relier.protocol.message import TaskMessage
    from relier.runtime.delivery import Delivery

log = logging.getLogger("relier.tracing")

#: The headers a W3C propagator reads; only these (and only strings) are taken from a
#: message, whose bytes anyone could have written.
CONTEXT_HEADERS: Final = ("traceparent", "tracestate", "baggage")
#: Outcomes that mark a run's span as an error.
FAILED_OUTCOMES: Final = frozenset({"failure", "timeout"})


def run_span(
    message: TaskMessage, delivery: Delivery, worker_id: str, on: bool
) -> AbstractContextManager[object]:
    """The span around one run of a task and its settle; a no-op when ``on`` is False."""
    if not on or not otel.configured():
        return nullcontext()
    return _run_span(message, delivery, worker_id)


@contextmanager
def _run_span(message: TaskMessage, delivery: Delivery, worker_id: str) -> Iterator[object]:
    attributes: dict[str, str | int] = {
        "celery.action": "run", "celery.task_name": message.task,
        "messaging.message.id": message.id, "messaging.destination.name": message.origin_queue,
        "messaging.system": "redis", "relier.attempt": message.retries + 1,
        "relier.resurrections": message.resurrections, "relier.worker": worker_id,
    }
    with otel.tracer().start_as_current_span(
            f"run/{message.task}", context=_parent_of(message), kind=otel.SpanKind.CONSUMER,
            attributes=attributes) as span:
        if message.resurrections:
            span.add_event("relier.resurrected",
                           {"relier.resurrections": message.resurrections})
        try:
            yield span
        finally:
            try:
                _note_outcome(span, delivery)
            except Exception:  # an observer never fails the task it watches
                log.exception("could not record the outcome of %s on its span", message.id)


def _parent_of(message: TaskMessage) -> Any:
    """The trace context a message carries, or None; a malformed one is ignored."""
    carrier = {name: value for name in CONTEXT_HEADERS
               if isinstance(value := message.headers.get(name), str)}
    if not carrier:
        return None
    try:
        return otel.propagate.extract(carrier)
    except Exception as exc:  # a propagator choking on hostile bytes must not fail the task
        log.debug("ignoring the trace context of %s: %s", message.id, exc)
        return None


def _note_outcome(span: Any, delivery: Delivery) -> None:
    # Imported here: the recorder imports the runtime, which imports this module.
    from relier.observability.recorder import outcome_of

    settled = delivery.settled
    outcome = outcome_of(settled)
    span.set_attribute("relier.outcome", outcome)
    if settled is not None and settled.kind == "schedule" and settled.reason == "retry":
        span.add_event("relier.retry_scheduled")
    if settled is not None and settled.kind == "dead_letter":
        span.add_event("relier.dead_lettered", {"relier.reason": settled.reason or "",
                                                "relier.error": settled.error or ""})
    if outcome in FAILED_OUTCOMES or (settled is not None and settled.kind == "dead_letter"):
        span.set_status(otel.StatusCode.ERROR, (settled.error if settled else None) or outcome)


def event(name: str, attributes: Mapping[str, str | int | float] | None = None) -> None:
    """Add an event to the span of the task running in this context, if it is traced."""
    if not AVAILABLE:
        return
    span = otel.trace.get_current_span()
    if span.is_recording():
        span.add_event(name, dict(attributes or {}))


class RunTracing:
    """The worker's :class:`relier.runtime.hooks.RunTracer`: :func:`run_span` and
    :func:`event`, on when the ``tracing`` setting is and OpenTelemetry is configured."""

    def __init__(self, setting: bool) -> None:
        self._on = enabled(setting)

    def run_span(self, message: TaskMessage, delivery: Delivery,
                 worker_id: str) -> AbstractContextManager[object]:
        return run_span(message, delivery, worker_id, self._on)

    def event(self, name: str,
              attributes: Mapping[str, str | int | float] | None = None) -> None:
        event(name, attributes)
