"""The taskiq side of the benchmarks: its Redis list broker, the same three tasks.

The worker is started as ``taskiq worker benchmarks.taskiq_app:broker --workers 2``
with the server's URL in ``BENCH_REDIS_URL``. No result backend: results are off.

taskiq's list broker has no acknowledgement, so nothing in Redis says a task that has
left the queue is finished. :class:`CompletionCounter` keeps that count in memory and
adds it to ``bench:done`` at most every few milliseconds (one ``INCRBY`` per flush, not
per task), which is what the benchmark polls. taskiq is a bench dependency only.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import redis.asyncio as aioredis
from taskiq import TaskiqEvents, TaskiqMiddleware, TaskiqState
from taskiq_redis import ListQueueBroker

from benchmarks.common import DONE_KEY, IO_SLEEP_S, QUEUE, STARTS_KEY, redis_url

#: Seconds between flushes of the completion count.
FLUSH_S = 0.005


class CompletionCounter(TaskiqMiddleware):
    """Counts finished tasks in memory; a background loop adds them to ``bench:done``."""

    def __init__(self) -> None:
        super().__init__()
        self.finished = 0

    def post_execute(self, message: Any, result: Any) -> None:
        self.finished += 1

    async def flush_forever(self) -> None:
        client = aioredis.Redis.from_url(redis_url())
        reported = 0
        while True:
            await asyncio.sleep(FLUSH_S)
            if self.finished != reported:
                now = self.finished
                await client.incrby(DONE_KEY, now - reported)
                reported = now


counter = CompletionCounter()
broker = ListQueueBroker(redis_url(), queue_name=QUEUE).with_middlewares(counter)
_flusher: set[asyncio.Task[None]] = set()


@broker.on_event(TaskiqEvents.WORKER_STARTUP)
async def _start_flusher(state: TaskiqState) -> None:
    _flusher.add(asyncio.create_task(counter.flush_forever()))


@broker.task(task_name="bench.noop")
async def noop() -> None:
    """Does nothing: what is left is the runtime's own cost per task."""


@broker.task(task_name="bench.io")
async def io() -> None:
    """Waits on (simulated) I/O without holding the event loop."""
    await asyncio.sleep(IO_SLEEP_S)


_stamps: aioredis.Redis | None = None


@broker.task(task_name="bench.stamp")
async def stamp(index: int) -> None:
    """Records when it started: ``index time`` on the stamps list (clock read first)."""
    started = time.time()
    global _stamps
    if _stamps is None:
        _stamps = aioredis.Redis.from_url(redis_url())
    await _stamps.rpush(STARTS_KEY, f"{index} {started!r}")
