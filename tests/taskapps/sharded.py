"""Tasks on hash-tagged queues, for the Redis Cluster tests (-A tests.taskapps.sharded:app).

The three queues are chosen so that each lands on a different master of the test cluster
(``tests/test_cluster.py`` asserts it)."""

from __future__ import annotations

import asyncio
import time

import relier
from relier import App, current_task

app = App()

#: Each on its own shard of the 3-master test cluster: slots 865, 9053 and 15419.
ALPHA, BETA, GAMMA = "{alpha}", "{delta}", "{beta}"


@app.task(name="sharded.add", queue=ALPHA)
async def add(x: int, y: int) -> int:
    return x + y


@app.task(name="sharded.echo", queue=BETA)
async def echo(value: str | int) -> str | int:
    return value


@app.task(name="sharded.charge", queue=GAMMA, idempotent=True)
async def charge(order_id: str, cents: int) -> dict[str, object]:
    await app.broker().client.incr(f"test:charges:{{{order_id}}}")
    return {"order": order_id, "cents": cents}


@app.task(name="sharded.fail", queue=BETA)
async def fail(why: str) -> None:
    raise ValueError(why)


@app.task(name="sharded.sleep", queue=ALPHA)
async def sleep(seconds: float) -> str:
    await asyncio.sleep(seconds)
    return "slept"


#: When each run of ``tick`` started (a list, in the rate-limited queue's slot).
TICK_STARTS = "test:starts:{beta}"


@app.task(name="sharded.tick", queue=GAMMA, rate_limit="5/s")
async def tick(n: int) -> int:
    await app.broker().client.rpush(TICK_STARTS, time.time())
    return n


@app.task(name="sharded.stalls_once", queue=ALPHA)
async def stalls_once(key: str) -> int:
    """Hangs on its first run (long enough to be killed), returns its run count after."""
    runs = int(await app.broker().client.incr(f"test:runs:{{{key}}}"))
    if runs == 1:
        await app.broker().client.set(f"test:started:{{{key}}}", "1")
        await asyncio.sleep(120)
    return runs


@app.task(name="sharded.every_second", queue=BETA, schedule=relier.every(seconds=1))
async def every_second() -> str:
    return "tick"


@app.task(name="sharded.counted", queue=ALPHA)
async def counted(n: int) -> int:
    """Counts its runs on another shard than its queue's (``{delta}``'s)."""
    await app.broker().client.incr(f"test:ran:{{delta}}:{current_task().id}")
    return n
