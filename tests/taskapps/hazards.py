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


@app.task(name="hazards.stubborn")
async def stubborn() -> None:
    """Swallows every cancellation: only an exit stops it."""
    await app.broker().client.rpush("test:stubborn", "started")
    while True:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            continue


@app.task(name="hazards.steady")
async def steady(seconds: float) -> str:
    await app.broker().client.rpush("test:steady", "started")
    await asyncio.sleep(seconds)
    return "finished"
