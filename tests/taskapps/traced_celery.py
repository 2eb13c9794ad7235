"""A Celery worker app with OpenTelemetry's Celery instrumentation, for the tracing
tests: ``celery -A tests.taskapps.traced_celery worker -P solo``; Redis URL in
``INTEROP_REDIS_URL``, spans to ``RELIER_TEST_SPAN_FILE``."""

from __future__ import annotations

import os

from opentelemetry.instrumentation.celery import CeleryInstrumentor

from tests.span_files import export_spans_from_env
from tests.taskapps.interop_celery import URL_ENV, make_app

export_spans_from_env()
CeleryInstrumentor().instrument()

app = make_app(os.environ.get(URL_ENV, "redis://127.0.0.1:6379/0"), main="traced_celery")


@app.task(name="traced.celery_add")
def celery_add(x: int, y: int) -> int:
    return x + y
