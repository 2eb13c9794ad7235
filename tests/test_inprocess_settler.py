"""The settler and a delivery's settles in the test's event loop, against the real test
server: a settle removes the message from the processing list and stores its result in
one script, a stale one (its copy no longer in the list) writes nothing, and settles that
pile up go out in batches without losing one."""

from __future__ import annotations

import anyio
import redis

from relier import App
from relier.protocol import message as wire
from relier.protocol import results as result_codec
from relier.protocol.message import TaskMessage
from relier.store import keys
from tests.inprocess import runtime


def _app() -> tuple[App, object]:
    app = App()

    @app.task(name="settle.echo")
    async def echo(x: int) -> int:
        return x

    return app, echo


def _payload(task_id: str, value: int) -> bytes:
    return result_codec.encode(result_codec.success(task_id, value))


async def test_an_ack_drops_the_message_and_stores_the_result_together(
    redis_url: str, rclient: redis.Redis
) -> None:
    app, echo = _app()
    async with runtime(redis_url, app) as rt:
        handle = await echo.apush(7)  # type: ignore[attr-defined]
        delivery = await rt.take_one()
        processing = keys.processing("default", rt.worker_id)
        assert rclient.llen(processing) == 1
        message: TaskMessage = wire.decode(delivery.raw)
        assert await delivery.ack(message, _payload(handle.id, 7), 60)
    assert rclient.llen(processing) == 0
    stored = rclient.get(keys.result(handle.id))
    assert stored is not None and result_codec.decode(stored).result == 7
    assert 0 < rclient.ttl(keys.result(handle.id)) <= 60


async def test_a_stale_settle_writes_nothing(redis_url: str, rclient: redis.Redis) -> None:
    app, echo = _app()
    async with runtime(redis_url, app) as rt:
        handle = await echo.apush(8)  # type: ignore[attr-defined]
        delivery = await rt.take_one()
        processing = keys.processing("default", rt.worker_id)
        # Phoenix (or a give-back) took the copy away: this run is now a zombie.
        assert rclient.lrem(processing, 1, delivery.raw) == 1
        message = wire.decode(delivery.raw)
        assert await delivery.ack(message, _payload(handle.id, 8), 60) is False
        assert delivery.settled is not None and delivery.settled.accepted is False
    assert rclient.get(keys.result(handle.id)) is None
    assert rclient.llen(keys.dead_letters("default")) == 0


async def test_a_second_settle_of_one_delivery_is_refused(
    redis_url: str, rclient: redis.Redis
) -> None:
    app, echo = _app()
    async with runtime(redis_url, app) as rt:
        handle = await echo.apush(9)  # type: ignore[attr-defined]
        delivery = await rt.take_one()
        message = wire.decode(delivery.raw)
        assert await delivery.ack(message, _payload(handle.id, 9), 60)
        # A repeat (say, a retried settle whose first reply was lost) must not write again.
        assert await delivery.ack(message, _payload(handle.id, 999), 60) is False
    stored = rclient.get(keys.result(handle.id))
    assert stored is not None and result_codec.decode(stored).result == 9


async def test_many_concurrent_settles_all_land(redis_url: str, rclient: redis.Redis) -> None:
    app, echo = _app()
    count = 300  # more than one batch (MAX_BATCH is 256)
    async with runtime(redis_url, app) as rt:
        handles = await echo.apush_many([((i,), {}) for i in range(count)])  # type: ignore[attr-defined]
        deliveries = await rt.take("default", count)
        assert len(deliveries) == count
        accepted: list[bool] = []

        async def ack(i: int) -> None:
            message = wire.decode(deliveries[i].raw)
            accepted.append(await deliveries[i].ack(message, _payload(message.id, i), 60))

        async with anyio.create_task_group() as tg:
            for i in range(count):
                tg.start_soon(ack, i)
    assert accepted == [True] * count
    assert rclient.llen(keys.processing("default", rt.worker_id)) == 0
    assert all(rclient.exists(keys.result(h.id)) for h in handles)
