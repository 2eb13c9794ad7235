"""The chaos run's tasks (-A benchmarks.chaos_tasks:app): fast, slow, sync ``def``,
idempotent and failing ones, each writing start/finish records to a ledger file the run
keeps outside Relier (path in ``CHAOS_LEDGER``).

One JSON line per record, written with a single ``write`` on an ``O_APPEND`` file, so
records from several processes never interleave.
"""

from __future__ import annotations

import asyncio
import json
import os
import time

from relier import App, current_task

app = App()


def record(event: str) -> None:
    ctx = current_task()
    line = json.dumps({"e": event, "id": ctx.id, "attempt": ctx.attempt, "pid": os.getpid(),
                       "res": ctx.resurrections, "t": time.time()}) + "\n"
    fd = os.open(os.environ["CHAOS_LEDGER"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)


@app.task(name="chaos.fast")
async def fast(n: int) -> int:
    record("start")
    record("finish")
    return n


@app.task(name="chaos.slow")
async def slow(n: int, seconds: float) -> int:
    record("start")
    await asyncio.sleep(seconds)
    record("finish")
    return n


@app.task(name="chaos.sync")
def sync(n: int) -> int:
    record("start")
    time.sleep(0.05)
    record("finish")
    return n


@app.task(name="chaos.idempotent", idempotent=True)
async def idempotent(n: int) -> int:
    record("start")
    await asyncio.sleep(0.2)
    record("finish")
    return n


class Expected(Exception):
    """The failing kind's error: retried once, then dead-lettered."""


@app.task(name="chaos.failing", retries=1, retry_backoff=0.2, retry_on=Expected)
async def failing(n: int) -> None:
    record("start")
    raise Expected(f"task {n} always fails")
