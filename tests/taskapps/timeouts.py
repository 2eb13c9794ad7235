"""Tasks for the timeout, watchdog, retry and scheduling tests.

Worker subprocesses run them with ``-A tests.taskapps.timeouts:app``. Each task notes
what happened to it in Redis under a marker the test chooses, so that the test can see
starts, hooks and attempts without reading logs.
"""

from __future__ import annotations

import asyncio
import time

from relier import App, Retry, TaskContext, current_task

app = App()


def started_key(marker: str) -> str:
    return f"test:started:{marker}"


def hooks_key(marker: str) -> str:
    return f"test:soft:{marker}"


def finished_key(marker: str) -> str:
    return f"test:finished:{marker}"


async def note(key: str, value: object) -> None:
    await app.broker().client.rpush(key, str(value))


async def note_start(marker: str) -> TaskContext:
    """Record ``<task id> <attempt> <unix time>`` under the marker."""
    ctx = current_task()
    await note(started_key(marker), f"{ctx.id} {ctx.attempt} {time.time()}")
    return ctx


# -- soft and hard timeouts --------------------------------------------------------------


@app.task(name="timeouts.hang", soft_timeout=0.5, hard_timeout=1.5)
async def hang(marker: str, seconds: float) -> str:
    """Sleeps past both of its limits unless `seconds` is short."""
    await note_start(marker)
    await asyncio.sleep(seconds)
    await note(finished_key(marker), "done")
    return "finished"


@hang.on_soft_timeout
async def hang_soft(ctx: TaskContext) -> None:
    await note(hooks_key(ctx.id), f"{ctx.name} {ctx.attempt}")


@app.task(name="timeouts.celery_hang")
async def celery_hang(marker: str, seconds: float) -> str:
    """No limits of its own: a Celery producer sends them (time_limit, soft_time_limit)."""
    await note_start(marker)
    await asyncio.sleep(seconds)
    return "finished"


@celery_hang.on_soft_timeout
async def celery_hang_soft(ctx: TaskContext) -> None:
    await note(hooks_key(ctx.id), f"{ctx.name} {ctx.attempt}")


@app.task(name="timeouts.sync_hang", hard_timeout=1.0)
def sync_hang(seconds: float) -> str:
    """A sync task: its thread cannot be cancelled, only abandoned."""
    time.sleep(seconds)
    return "finished"


@app.task(name="timeouts.hang_once", retries=1, retry_backoff=0.1, hard_timeout=1.0)
async def hang_once(marker: str) -> int:
    """Hangs on its first attempt (timed out, then retried), returns on the second."""
    ctx = await note_start(marker)
    if ctx.attempt == 1:
        await asyncio.sleep(60)
    return ctx.attempt


@app.task(name="timeouts.add")
async def add(x: int, y: int) -> int:
    return x + y


# -- the watchdog ------------------------------------------------------------------------


@app.task(name="timeouts.block_loop")
async def block_loop(marker: str, seconds: float) -> str:
    """Blocks the event loop (a bug the watchdog exists for)."""
    await note_start(marker)
    time.sleep(seconds)  # noqa: ASYNC251 - blocking on purpose
    return "unblocked"


# -- retries -----------------------------------------------------------------------------


@app.task(name="timeouts.flaky", retries=3, retry_backoff=1.0)
async def flaky(marker: str, failures: int) -> int:
    """Fails its first `failures` attempts, then returns the attempt number."""
    ctx = await note_start(marker)
    if ctx.attempt <= failures:
        raise ConnectionError(f"attempt {ctx.attempt} failed")
    return ctx.attempt


@app.task(name="timeouts.always_fails", retries=3, retry_backoff=0.1)
async def always_fails(marker: str) -> None:
    ctx = await note_start(marker)
    raise ValueError(f"attempt {ctx.attempt} failed")


@app.task(name="timeouts.picky", retries=3, retry_backoff=0.1, retry_on=(ConnectionError,))
async def picky(marker: str) -> None:
    """Retries only on ConnectionError, and raises something else."""
    await note_start(marker)
    raise KeyError("not retryable")


@app.task(name="timeouts.asks_retry", retries=2)
async def asks_retry(marker: str, countdown: float) -> int:
    """Asks for one retry after `countdown` seconds."""
    ctx = await note_start(marker)
    if ctx.attempt == 1:
        raise Retry(countdown=countdown)
    return ctx.attempt


@app.task(name="timeouts.idempotent_flaky", idempotent=True, retries=2, retry_backoff=0.1)
async def idempotent_flaky(marker: str) -> int:
    """An idempotent call that needs one retry."""
    ctx = await note_start(marker)
    if ctx.attempt == 1:
        raise ConnectionError("first attempt fails")
    return ctx.attempt


@app.task(name="timeouts.retries_itself")
async def retries_itself(marker: str) -> int:
    """Declares no retries, but asks for up to two itself."""
    ctx = await note_start(marker)
    if ctx.attempt < 3:
        raise Retry(countdown=0.1, max_retries=2)
    return ctx.attempt


@app.task(name="timeouts.always_asks_retry", retries=1)
async def always_asks_retry(marker: str) -> None:
    await note_start(marker)
    raise Retry(countdown=0.1)


# -- countdown, eta, expires -------------------------------------------------------------


@app.task(name="timeouts.stamp")
async def stamp(marker: str) -> float:
    """Returns when it started (unix seconds)."""
    await note_start(marker)
    return time.time()
