"""Spans from worker subprocesses, for the tracing tests.

A worker process whose task app calls :func:`export_spans_from_env` appends every span
it ends to the file named by ``RELIER_TEST_SPAN_FILE``, one JSON object per line (the
SDK's SimpleSpanProcessor exports as each span ends, so a ``kill -9`` loses only the
span that was still open). The test reads them back with :func:`read_spans`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

SPAN_FILE_ENV = "RELIER_TEST_SPAN_FILE"


def export_spans_from_env() -> None:
    """Install a tracer provider writing to ``$RELIER_TEST_SPAN_FILE``, if it is set."""
    path = os.environ.get(SPAN_FILE_ENV)
    if not path:
        return
    from opentelemetry import trace
    from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
    from opentelemetry.sdk.trace.export import (
        SimpleSpanProcessor,
        SpanExporter,
        SpanExportResult,
    )

    class FileExporter(SpanExporter):
        def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
            with open(path, "a") as out:
                for span in spans:
                    out.write(json.dumps(as_dict(span)) + "\n")
            return SpanExportResult.SUCCESS

    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(FileExporter()))
    trace.set_tracer_provider(provider)


def as_dict(span: Any) -> dict[str, Any]:
    """The facts a test asserts on, with ids as hex strings."""
    context, parent = span.context, span.parent
    return {
        "name": span.name,
        "kind": span.kind.name,
        "trace_id": f"{context.trace_id:032x}",
        "span_id": f"{context.span_id:016x}",
        "parent_id": f"{parent.span_id:016x}" if parent is not None else None,
        "attributes": dict(span.attributes or {}),
        "events": [event.name for event in span.events],
        "status": span.status.status_code.name,
    }


def read_spans(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
