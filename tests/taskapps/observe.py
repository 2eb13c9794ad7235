"""Tasks for the observability tests (-A tests.taskapps.observe:app)."""

from __future__ import annotations

import asyncio
import os
import time

from relier import App, current_task

app = App()


@app.task(name="observe.ok")
async def ok(x: int) -> int:
    return x


@app.task(name="observe.boom")
async def boom(text: str) -> None:
    raise RuntimeError(text)


@app.task(name="observe.hold")
async def hold(marker: str, seconds: float, rerun_seconds: float | None = None) -> str:
    """Marks its start in Redis (so a test sees it running), then sleeps; a resurrected
    run sleeps ``rerun_seconds`` instead, when given (a test that kills the first run
    makes that one long, so that a slow machine cannot finish it before the kill)."""
    await app.broker().client.rpush(f"test:started:{marker}", current_task().id)
    first_run = current_task().resurrections == 0
    await asyncio.sleep(seconds if first_run or rerun_seconds is None else rerun_seconds)
    return current_task().worker_id


@app.task(name="observe.exit_worker")
async def exit_worker(code: int) -> str:
    """Ends its worker process at once with ``code`` (as a crash or a recycle would), the
    first time it runs; once resurrected it returns the pid that ran it."""
    if current_task().resurrections == 0:
        os._exit(code)
    return str(os.getpid())


@app.task(name="observe.limited", queue="limited", max_queue_depth=2)
async def limited(x: int) -> int:
    return x


@app.task(name="observe.once", idempotent=True)
async def once(order: str) -> str:
    return order


@app.task(name="observe.hang", soft_timeout=0.3, hard_timeout=0.8)
async def hang(seconds: float) -> None:
    """Sleeps past its soft and hard timeouts (no retries: dead-lettered)."""
    await asyncio.sleep(seconds)


@app.task(name="observe.sync_hang", hard_timeout=0.5)
def sync_hang(seconds: float) -> None:
    """A sync task past its hard timeout: its thread is abandoned and sleeps on."""
    time.sleep(seconds)
