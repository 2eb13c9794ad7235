"""Tasks for the tracing tests (-A tests.taskapps.traced:app); spans go to the file in
``RELIER_TEST_SPAN_FILE`` (tests/span_files.py)."""

from __future__ import annotations

import asyncio

from opentelemetry import trace

from relier import App, current_task
from tests.span_files import export_spans_from_env

export_spans_from_env()

app = App()


@app.task(name="traced.checkout", retries=2, retry_backoff=0.05, retry_on=(ConnectionError,))
async def checkout(marker: str) -> str:
    """Attempt 1 fails (a retry); attempt 2 hangs until its worker is killed; the
    resurrected run charges the card (a span of the task's own) and succeeds."""
    ctx = current_task()
    await app.broker().client.rpush(f"test:started:{marker}", f"{ctx.attempt}:{ctx.resurrections}")
    if ctx.attempt == 1:
        raise ConnectionError("payment gateway down")
    if ctx.resurrections == 0:
        await asyncio.sleep(3600)  # killed here with kill -9
    with trace.get_tracer("shop").start_as_current_span("charge card"):
        await asyncio.sleep(0)
    return "paid"


@app.task(name="traced.add")
async def add(x: int, y: int) -> int:
    return x + y
