"""The Relier side of the benchmarks: a no-op task and an I/O-bound task.

The worker is started as ``python -m relier worker -A benchmarks.relier_app:app``; the
Redis URL comes from ``--redis-url`` (the benchmark sets it on this App for pushing).
"""

from __future__ import annotations

import asyncio

import relier
from benchmarks.common import IO_SLEEP_S, QUEUE

app = relier.App()


@app.task(name="bench.noop", queue=QUEUE, ignore_result=True)
async def noop() -> None:
    """Does nothing: what is left is the runtime's own cost per task."""


@app.task(name="bench.io", queue=QUEUE, ignore_result=True)
async def io() -> None:
    """Waits on (simulated) I/O without holding the event loop."""
    await asyncio.sleep(IO_SLEEP_S)
