"""benchmarks.relier_app with an OpenTelemetry SDK as the global provider: every span
is made, recorded and dropped (benchmarks/otel_sdk.py).

``relier worker -A benchmarks.traced_app:app``.
"""

from __future__ import annotations

from opentelemetry import trace

from benchmarks.otel_sdk import sdk_provider
from benchmarks.relier_app import app, noop

trace.set_tracer_provider(sdk_provider())

__all__ = ["app", "noop"]
