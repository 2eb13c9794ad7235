"""Rate-limited tasks, for worker subprocesses (-A tests.taskapps.ratelimited:app)."""

from __future__ import annotations

import time

from relier import App, current_task

app = App()

#: List of "task_id worker_id started_at" lines, one per run.
STARTS = "test:rate:starts"


@app.task(name="rated.tick", rate_limit="20/s")
async def tick(n: int) -> int:
    ctx = current_task()
    await app.broker().client.rpush(STARTS, f"{ctx.id} {ctx.worker_id} {time.time()}")
    return n


@app.task(name="rated.slow", rate_limit="1/m")
async def once_a_minute(n: int) -> int:
    ctx = current_task()
    await app.broker().client.rpush(STARTS, f"{ctx.id} {ctx.worker_id} {time.time()}")
    return n
