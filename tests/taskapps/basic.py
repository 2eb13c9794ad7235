"""Tasks for tests of the core path. Used by worker subprocesses via -A tests.taskapps.basic:app."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import threading
import time
from datetime import datetime

from relier import App, current_task

app = App()


@dataclasses.dataclass
class Order:
    order_id: str
    amount_cents: int


@app.task(name="basic.add")
async def add(x: int, y: int) -> int:
    return x + y


@app.task(name="basic.sync_add")
def sync_add(x: int, y: int) -> dict[str, object]:
    return {"sum": x + y, "thread": threading.current_thread().name}


@app.task(name="basic.fail")
async def fail(message: str) -> None:
    raise ValueError(message, 42)


@app.task(name="basic.sleep")
async def sleep(seconds: float) -> str:
    await asyncio.sleep(seconds)
    return "slept"


@app.task(name="basic.sync_sleep")
def sync_sleep(seconds: float) -> str:
    time.sleep(seconds)
    return "slept"


@app.task(name="basic.typed")
async def typed(order: Order, when: datetime) -> dict[str, object]:
    assert isinstance(order, Order) and isinstance(when, datetime)
    return {"order": order.order_id, "year": when.year}


@app.task(name="basic.context")
async def context() -> dict[str, object]:
    ctx = current_task()
    return {"id": ctx.id, "name": ctx.name, "queue": ctx.queue, "attempt": ctx.attempt}


@app.task(name="basic.record_start", queue="default")
async def record_start(marker: str, seconds: float) -> str:
    """Marks its start in Redis (so a test can see it began), then sleeps."""
    client = app.broker().client
    await client.rpush(f"test:started:{marker}", current_task().id)
    await asyncio.sleep(seconds)
    return marker


@app.task(name="basic.whoami")
async def whoami(marker: str, seconds: float, rerun_seconds: float | None = None) -> str:
    """Marks its start, sleeps, and returns the id of the worker that ran it.

    ``rerun_seconds`` (default: ``seconds``) is how long a resurrected run sleeps: a test
    that kills the first run gives it a long ``seconds``, so that a slow machine cannot
    finish it before the kill, and a short rerun."""
    client = app.broker().client
    await client.rpush(f"test:started:{marker}", current_task().id)
    first_run = current_task().resurrections == 0
    await asyncio.sleep(seconds if first_run or rerun_seconds is None else rerun_seconds)
    return current_task().worker_id


@app.task(name="basic.crash")
async def crash(marker: str) -> None:
    """Kills its own worker process, every time it runs (a poison task)."""
    client = app.broker().client
    await client.rpush(f"test:started:{marker}", current_task().id)
    os._exit(1)


@app.task(name="basic.spin")
async def spin(seconds: float) -> int:
    """Holds the event loop with pure-Python work for `seconds` (no await)."""
    deadline = time.monotonic() + seconds
    loops = 0
    while time.monotonic() < deadline:
        loops += 1
    return loops
