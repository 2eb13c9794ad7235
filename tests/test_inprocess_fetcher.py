"""The fetcher in the test's event loop, against the real test server: it never takes
more messages than there are free slots, takes more as slots free up, and everything
it takes is in this worker's processing list (never only in memory)."""

from __future__ import annotations

import anyio
import anyio.lowlevel
import redis

from relier import App
from relier.runtime.capacity import Capacity
from relier.runtime.delivery import Delivery
from relier.runtime.fetcher import Fetcher
from relier.store import keys
from tests.inprocess import runtime, until


async def test_fetch_never_takes_more_than_the_free_slots(
    redis_url: str, rclient: redis.Redis
) -> None:
    app = App()

    @app.task(name="fetch.noop")
    async def noop(i: int) -> None: ...

    capacity = Capacity(3)
    taken: list[Delivery] = []
    processing = keys.processing("default", "inproc-worker")
    async with runtime(redis_url, app) as rt:
        await noop.apush_many([((i,), {}) for i in range(10)])
        fetcher = Fetcher(rt.broker, rt.settler, ["default"], rt.worker_id, capacity,
                          taken.append)
        async with anyio.create_task_group() as tg:
            tg.start_soon(fetcher.run, name="test fetcher")
            await until(lambda: len(taken) == 3, "three deliveries")
            # Full: however many fetch rounds pass, nothing more leaves the queue. The
            # fetcher blocks on free capacity, so waking it must not take a fourth.
            fetcher.wake()
            for _ in range(5):
                await anyio.lowlevel.checkpoint()
            assert len(taken) == 3 and capacity.free == 0
            assert rclient.llen(processing) == 3
            assert rclient.llen(keys.queue_list("default")) == 7
            # One slot frees: exactly one more is taken.
            capacity.release()
            await until(lambda: len(taken) == 4, "a fourth delivery")
            assert rclient.llen(processing) == 4
            assert rclient.llen(keys.queue_list("default")) == 6
            tg.cancel_scope.cancel()
    # Every delivery handed out is the very bytes in the processing list.
    held = set(rclient.lrange(processing, 0, -1))
    assert {d.raw for d in taken} == held
    assert {d.queue for d in taken} == {"default"}


async def test_an_idle_fetcher_takes_a_message_pushed_later(
    redis_url: str, rclient: redis.Redis
) -> None:
    app = App()

    @app.task(name="fetch.later")
    async def later() -> None: ...

    taken: list[Delivery] = []
    async with runtime(redis_url, app) as rt:
        fetcher = Fetcher(rt.broker, rt.settler, ["default"], rt.worker_id, Capacity(4),
                          taken.append)
        async with anyio.create_task_group() as tg:
            tg.start_soon(fetcher.run, name="test fetcher")
            handle = await later.apush()
            await until(lambda: len(taken) == 1, "the pushed message")
            tg.cancel_scope.cancel()
    assert taken[0].raw in rclient.lrange(keys.processing("default", rt.worker_id), 0, -1)
    assert handle.id.encode() in taken[0].raw
