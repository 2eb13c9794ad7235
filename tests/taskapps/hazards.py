"""Tasks that misbehave in ways a worker must survive (-A tests.taskapps.hazards:app)."""

from __future__ import annotations

import asyncio
import os

from relier import App

app = App()


@app.task(name="hazards.self_cancel")
async def self_cancel() -> None:
    """Awaits a sub-task that was cancelled: CancelledError from the task's own code."""
    inner = asyncio.create_task(asyncio.sleep(10))
    await asyncio.sleep(0)
    inner.cancel()
    await inner


@app.task(name="hazards.echo")
async def echo(value: str) -> str:
    return value


@app.task(name="hazards.fail")
async def fail(value: str) -> None:
    raise ValueError(value)


@app.task(name="hazards.crash_once_idempotent", idempotent=True)
async def crash_once_idempotent(order: str) -> None:
    """Ends its worker process, as a segfault or the OOM killer would."""
    os._exit(1)
