"""OpenTelemetry traces through the queue (``pip install 'relier[otel]'``).

This is the only module that imports OpenTelemetry, and it does so guarded: without
the extra, with the ``tracing`` setting off, or while no tracer provider is configured
(``opentelemetry-api`` is often installed by some other library, and its default
provider records nothing), every hook here is a no-op: no span, no header, no
allocation per task.

* **Producer.** A push runs in a ``PRODUCER`` span ``apply_async/<task>`` (Celery's
  instrumentation names it so) and writes that span's W3C context (``traceparent``,
  ``tracestate``, and ``baggage``: whatever the global propagator writes) as top-level
  message headers: where ``opentelemetry-instrumentation-celery`` injects and looks.
  A Celery-instrumented worker therefore continues a Relier trace, and a Relier worker
  continues one that a Celery-instrumented producer started.
* **Worker.** Each run is a ``CONSUMER`` span ``run/<task>``, child of the context in
  its message's headers, current while the task body runs (so what the task pushes or
  calls joins the trace). Attributes: task name, id, attempt, resurrections, queue,
  worker, outcome. Events: ``relier.resurrected`` (the run follows a dead worker's),
  ``relier.soft_timeout``, ``relier.retry_scheduled``, ``relier.dead_lettered``.
  A retry or a resurrection keeps the message's headers, so every run of one push is a
  child of that push's span: the trace shows each attempt side by side.

Spans go to the global tracer provider the application configured (the SDK and its
exporters; Relier configures none), or to the one given to :func:`use_tracer_provider`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Final, Protocol

if TYPE_CHECKING:
    from relier.protocol.message import TaskMessage
    from relier.runtime.delivery import Delivery

try:
    from opentelemetry import propagate, trace
    from opentelemetry.trace import Span, SpanKind, StatusCode
except ImportError:  # the extra is not installed: every hook below is a no-op
    AVAILABLE = False
else:
    AVAILABLE = True

log = logging.getLogger("relier.tracing")

#: The instrumentation scope our spans carry.
TRACER_NAME: Final = "relier"
#: The headers a W3C propagator reads; only these (and only strings) are taken from a
#: message, whose bytes anyone could have written.
CONTEXT_HEADERS: Final = ("traceparent", "tracestate", "baggage")
#: Outcomes that mark a run's span as an error.
FAILED_OUTCOMES: Final = frozenset({"failure", "timeout"})

#: No trace headers (tracing off), shared and read-only.
NO_HEADERS: Final[Mapping[str, str]] = MappingProxyType({})


class Sent(Protocol):
    """What a push reports per message it enqueued (``relier.store.broker.Enqueued``)."""

    @property
    def task_id(self) -> str: ...


class PushTrace:
    """What a push needs from its span: headers for each message, a place for their ids."""

    __slots__ = ("_span", "headers")

    def __init__(self, headers: Mapping[str, str], span: Any = None) -> None:
        #: Headers to add to every message of the push (empty when tracing is off).
        self.headers = headers
        self._span = span

    def sent(self, enqueued: Sequence[Sent]) -> None:
        """Note what the push enqueued (one message: its id, Celery's attribute)."""
        if self._span is None:
            return
        if len(enqueued) == 1:
            self._span.set_attribute("messaging.message.id", enqueued[0].task_id)
        self._span.set_attribute("messaging.batch.message_count", len(enqueued))


_OFF: Final = PushTrace(NO_HEADERS)
#: Relier's tracer, made on first use (a global provider set later still gets the spans:
#: the API's proxy tracer forwards to it).
_tracer: Any = None
_provider: Any = None


def use_tracer_provider(provider: Any) -> None:
    """Send Relier's spans to ``provider`` (an SDK ``TracerProvider``) instead of the
    global one; ``None`` goes back to the global provider. For tests and for apps that
    keep several providers."""
    global _tracer, _provider
    _provider, _tracer = provider, None


def _get_tracer() -> Any:
    global _tracer
    if _tracer is None:
        _tracer = trace.get_tracer(TRACER_NAME, tracer_provider=_provider)
    return _tracer


def enabled(setting: bool) -> bool:
    """Whether to trace: the extra is installed and the ``tracing`` setting is on."""
    return AVAILABLE and setting


def _configured() -> bool:
    """Whether spans would be recorded: a provider was given to :func:`use_tracer_provider`
    or set globally (before that, the API's proxy provider makes spans that record
    nothing; checked per call, because an app may set its provider after the first push)."""
    return _provider is not None or not isinstance(trace.get_tracer_provider(),
                                                   trace.ProxyTracerProvider)


def push_span(task_name: str, queue: str, on: bool) -> AbstractContextManager[PushTrace]:
    """The span around one push (or bulk push); a shared no-op when ``on`` is False."""
    if not on or not _configured():
        return nullcontext(_OFF)
    return _push_span(task_name, queue)


@contextmanager
def _push_span(task_name: str, queue: str) -> Iterator[PushTrace]:
    tracer = _get_tracer()
    with tracer.start_as_current_span(f"apply_async/{task_name}", kind=SpanKind.PRODUCER,
                                      attributes={"celery.action": "apply_async",
                                                  "celery.task_name": task_name,
                                                  "messaging.destination.name": queue,
                                                  "messaging.system": "redis"}) as span:
        headers: dict[str, str] = {}
        propagate.inject(headers)
        yield PushTrace(headers, span)


def run_span(
    message: TaskMessage, delivery: Delivery, worker_id: str, on: bool
) -> AbstractContextManager[object]:
    """The span around one run of a task and its settle; a no-op when ``on`` is False."""
    if not on or not _configured():
        return nullcontext()
    return _run_span(message, delivery, worker_id)


@contextmanager
def _run_span(message: TaskMessage, delivery: Delivery, worker_id: str) -> Iterator[object]:
    tracer = _get_tracer()
    attributes: dict[str, str | int] = {
        "celery.action": "run", "celery.task_name": message.task,
        "messaging.message.id": message.id, "messaging.destination.name": message.origin_queue,
        "messaging.system": "redis", "relier.attempt": message.retries + 1,
        "relier.resurrections": message.resurrections, "relier.worker": worker_id,
    }
    with tracer.start_as_current_span(f"run/{message.task}", context=_parent_of(message),
                                      kind=SpanKind.CONSUMER, attributes=attributes) as span:
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
        return propagate.extract(carrier)
    except Exception as exc:  # a propagator choking on hostile bytes must not fail the task
        log.debug("ignoring the trace context of %s: %s", message.id, exc)
        return None


def _note_outcome(span: Span, delivery: Delivery) -> None:
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
        span.set_status(StatusCode.ERROR, (settled.error if settled else None) or outcome)


def event(name: str, attributes: Mapping[str, str | int | float] | None = None) -> None:
    """Add an event to the span of the task running in this context, if it is traced."""
    if not AVAILABLE:
        return
    span = trace.get_current_span()
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
