"""The raw limits: what redis-py alone gets from the same server, with no task system.

Each figure is the ceiling a producer can approach on this machine: ``LPUSH`` of a
message-sized payload (the size of a Relier message) to the benchmark queue,

* one round trip at a time (a sync loop; each call is also timed, which gives the round
  trip's own latency for the latency comparison);
* ``IN_FLIGHT`` at a time (asyncio, that many coroutines each awaiting its own LPUSH on
  a pool of as many connections);
* pipelined, ``BATCH`` LPUSHes per pipeline (one round trip per batch).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import redis
import redis.asyncio as aioredis

from benchmarks.common import QUEUE

#: Bytes pushed per message: about the size of a Relier message for a no-op task.
PAYLOAD = b"x" * 925
#: Concurrent LPUSHes in the asyncio measurement.
IN_FLIGHT = 50
#: LPUSHes per pipeline in the pipelined measurement (the same as Relier's push_many).
BATCH = 500


@dataclass(frozen=True)
class Timed:
    """``n`` operations over ``seconds`` of wall time."""

    n: int
    seconds: float

    @property
    def rate(self) -> float:
        return self.n / self.seconds


def round_trips(client: redis.Redis, n: int) -> tuple[Timed, list[float]]:
    """``n`` LPUSHes one at a time; the whole run, and each round trip in milliseconds."""
    samples: list[float] = []
    started = time.perf_counter()
    for _ in range(n):
        sent = time.perf_counter()
        client.lpush(QUEUE, PAYLOAD)
        samples.append((time.perf_counter() - sent) * 1000)
    return Timed(n, time.perf_counter() - started), samples


def pipelined(client: redis.Redis, n: int) -> Timed:
    """``n`` LPUSHes in pipelines of ``BATCH`` (no MULTI: a plain pipeline)."""
    started = time.perf_counter()
    for start in range(0, n, BATCH):
        pipe = client.pipeline(transaction=False)
        for _ in range(min(BATCH, n - start)):
            pipe.lpush(QUEUE, PAYLOAD)
        pipe.execute()
    return Timed(n, time.perf_counter() - started)


def in_flight(url: str, n: int) -> Timed:
    """``n`` LPUSHes by ``IN_FLIGHT`` coroutines at once, on one event loop."""
    return asyncio.run(_in_flight(url, n))


async def _in_flight(url: str, n: int) -> Timed:
    client = aioredis.Redis.from_url(url, max_connections=IN_FLIGHT)
    try:
        await asyncio.gather(*(client.ping() for _ in range(IN_FLIGHT)))  # open the pool
        remaining = [n]

        async def pusher() -> None:
            while remaining[0] > 0:
                remaining[0] -= 1
                await client.lpush(QUEUE, PAYLOAD)

        started = time.perf_counter()
        await asyncio.gather(*(pusher() for _ in range(IN_FLIGHT)))
        return Timed(n, time.perf_counter() - started)
    finally:
        await client.aclose()
