"""The Relier side of the benchmarks: a no-op task, an I/O-bound task, a start stamp.

The worker is started as ``python -m relier worker -A benchmarks.relier_app:app``; the
Redis URL comes from ``--redis-url`` (the benchmark sets it on this App for pushing).
"""

from __future__ import annotations

import asyncio
import time

import redis.asyncio as aioredis

import relier
from benchmarks.common import IO_SLEEP_S, QUEUE, STARTS_KEY, redis_url

app = relier.App()


@app.task(name="bench.noop", queue=QUEUE, ignore_result=True)
async def noop() -> None:
    """Does nothing: what is left is the runtime's own cost per task."""


@app.task(name="bench.io", queue=QUEUE, ignore_result=True)
async def io() -> None:
    """Waits on (simulated) I/O without holding the event loop."""
    await asyncio.sleep(IO_SLEEP_S)


_stamps: aioredis.Redis | None = None


@app.task(name="bench.stamp", queue=QUEUE, ignore_result=True)
async def stamp(index: int) -> None:
    """Records when it started, for the enqueue-to-start latency: ``index time`` on a list.

    The clock is read first; the write to Redis that reports it comes after.
    """
    started = time.time()
    global _stamps
    if _stamps is None:  # one client per worker process, on the worker's event loop
        _stamps = aioredis.Redis.from_url(redis_url())
    await _stamps.rpush(STARTS_KEY, f"{index} {started!r}")
