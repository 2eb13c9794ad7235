"""OpenTelemetry, guarded (``pip install 'relier[otel]'``), and the producer's span.

This is the only module that imports OpenTelemetry. Without the extra, with the
``tracing`` setting off, or while no tracer provider is configured
(``opentelemetry-api`` is often installed by some other library, and its default
provider records nothing), every hook is a no-op: no span, no header, no allocation per
task.

A push runs in a ``PRODUCER`` span ``apply_async/<task>`` (Celery's instrumentation
names it so) and writes that span's W3C context (``traceparent``, ``tracestate``, and
``baggage``: whatever the global propagator writes) as top-level message headers: where
``opentelemetry-instrumentation-celery`` injects and looks. A Celery-instrumented worker
therefore continues a Relier trace. The worker's side (the run span) is
:mod:`relier.observability.tracing`, which reaches OpenTelemetry through this module.

Spans go to the global tracer provider the application configured (the SDK and its
exporters; Relier configures none), or to the one given to :func:`use_tracer_provider`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from types import MappingProxyType
from typing import Any, Final, Protocol

try:
    from opentelemetry import propagate as propagate
    from opentelemetry import trace as trace
    from opentelemetry.trace import Span as Span
    from opentelemetry.trace import SpanKind as SpanKind
    from opentelemetry.trace import StatusCode as StatusCode
except ImportError:  # the extra is not installed: every hook is a no-op
    AVAILABLE = False
else:
    AVAILABLE = True

#: The instrumentation scope our spans carry.
TRACER_NAME: Final = "relier"

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


def tracer() -> Any:
    """Relier's tracer (call only when :func:`configured`)."""
    global _tracer
    if _tracer is None:
        _tracer = trace.get_tracer(TRACER_NAME, tracer_provider=_provider)
    return _tracer


def enabled(setting: bool) -> bool:
    """Whether to trace: the extra is installed and the ``tracing`` setting is on."""
    return AVAILABLE and setting


def configured() -> bool:
    """Whether spans would be recorded: a provider was given to :func:`use_tracer_provider`
    or set globally (before that, the API's proxy provider makes spans that record
    nothing; checked per call, because an app may set its provider after the first push)."""
    return _provider is not None or not isinstance(trace.get_tracer_provider(),
                                                   trace.ProxyTracerProvider)


def push_span(task_name: str, queue: str, on: bool) -> AbstractContextManager[PushTrace]:
    """The span around one push (or bulk push); a shared no-op when ``on`` is False."""
    if not on or not configured():
        return nullcontext(_OFF)
    return _push_span(task_name, queue)


@contextmanager
def _push_span(task_name: str, queue: str) -> Iterator[PushTrace]:
    with tracer().start_as_current_span(
            f"apply_async/{task_name}", kind=SpanKind.PRODUCER,
            attributes={"celery.action": "apply_async", "celery.task_name": task_name,
                        "messaging.destination.name": queue,
                        "messaging.system": "redis"}) as span:
        headers: dict[str, str] = {}
        propagate.inject(headers)
        yield PushTrace(headers, span)
