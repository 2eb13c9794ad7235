"""benchmarks.relier_app with an OpenTelemetry SDK installed: every span is made,
recorded and handed to a batch processor whose exporter drops it, so what is measured
is Relier's tracing cost (and the SDK's), not an exporter's I/O.

``relier worker -A benchmarks.traced_app:app``.
"""

from __future__ import annotations

from collections.abc import Sequence

from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

from benchmarks.relier_app import app, noop


class DropExporter(SpanExporter):
    """Takes every span and keeps none."""

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return SpanExportResult.SUCCESS


def sdk_provider() -> TracerProvider:
    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(DropExporter()))
    return provider


trace.set_tracer_provider(sdk_provider())

__all__ = ["app", "noop"]
