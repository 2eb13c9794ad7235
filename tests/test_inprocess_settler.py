"""The settler and a delivery's settles in the test's event loop, against the real test
server: a settle removes the message from the processing list and stores its result in
one script, a stale one (its copy no longer in the list) writes nothing, and settles that
pile up go out in batches without losing one."""

from __future__ import annotations

import anyio
import anyio.lowlevel
import pytest
import redis
from redis.exceptions import ResponseError

from relier import App
from relier.protocol import message as wire
from relier.protocol import results as result_codec
from relier.protocol.message import TaskMessage
from relier.runtime.delivery import Delivery, SettleLate, Settler
from relier.store import coalesce, keys, ops, settles
from relier.store.broker import Broker
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


async def test_coalesced_acks_fence_each_message_on_its_own(
    redis_url: str, rclient: redis.Redis
) -> None:
    """Plain acks of one processing list go out as one ``ack_many`` call; a message no
    longer in the list is refused (no result written) while the others land."""
    app, echo = _app()
    async with runtime(redis_url, app) as rt:
        handles = await echo.apush_many([((i,), {}) for i in range(3)])  # type: ignore[attr-defined]
        deliveries = await rt.take("default", 3)
        # The middle one's copy is gone (Phoenix moved it): that run is a zombie.
        assert rclient.lrem(deliveries[1].held.processing, 1, deliveries[1].raw) == 1
        acks = [settles.ack(held=d.held, task_id=wire.decode(d.raw).id,
                            result=_payload(wire.decode(d.raw).id, i), result_ttl_s=60)
                for i, d in enumerate(deliveries)]
        plan = coalesce.plan(acks)
        assert [c.name for c in plan.calls] == ["ack_many"]
        answers = await ops.run_all(rt.broker.client, acks)
        assert [op.read(a) for op, a in zip(acks, answers, strict=True)] == [True, False, True]
    assert rclient.llen(keys.processing("default", rt.worker_id)) == 0
    assert [rclient.exists(keys.result(h.id)) for h in handles] == [1, 0, 1]
    stored = rclient.get(keys.result(handles[2].id))
    assert stored is not None and result_codec.decode(stored).result == 2
    assert 0 < rclient.ttl(keys.result(handles[2].id)) <= 60


async def test_acks_that_cannot_share_a_call_are_sent_alone(
    redis_url: str, rclient: redis.Redis
) -> None:
    """An ack with an idempotency record, one of another processing list and one with a
    different result TTL each keep their own call; replies still line up in order."""
    app, echo = _app()
    async with runtime(redis_url, app) as rt:
        await echo.apush_many([((i,), {}) for i in range(5)])  # type: ignore[attr-defined]
        ds = await rt.take("default", 5)
        other = settles.Held(queue="default", worker_id="another-worker", raw=ds[4].raw)
        ids = [wire.decode(d.raw).id for d in ds]
        acks = [
            settles.ack(held=ds[0].held, task_id=ids[0], result=b"", result_ttl_s=60),
            settles.ack(held=ds[1].held, task_id=ids[1], result=b"", result_ttl_s=60,
                        record=settles.Record(task="settle.echo", key="k1", ttl_s=60)),
            settles.ack(held=ds[2].held, task_id=ids[2], result=b"", result_ttl_s=30),
            settles.ack(held=ds[3].held, task_id=ids[3], result=b"", result_ttl_s=60),
            settles.ack(held=other, task_id=ids[4], result=b"", result_ttl_s=60),
        ]
        plan = coalesce.plan(acks)
        assert [c.name for c in plan.calls] == ["ack_many", "ack", "ack", "ack"]
        answers = await ops.run_all(rt.broker.client, acks)
        assert [op.read(a) for op, a in zip(acks, answers, strict=True)] == [
            True, True, True, True, False]
    # The message the other worker never held is still in this worker's list.
    assert rclient.lrange(keys.processing("default", rt.worker_id), 0, -1) == [ds[4].raw]
    assert rclient.hget(keys.idempotency("settle.echo", "k1"), "state") == b"succeeded"
    assert not any(rclient.exists(keys.result(i)) for i in ids)  # no results kept


def test_a_coalesced_reply_of_the_wrong_shape_lands_nothing() -> None:
    held = [settles.Held(queue="q", worker_id="w", raw=b"m%d" % i) for i in range(2)]
    acks = [settles.ack(held=h, task_id=f"t{i}", result=b"", result_ttl_s=1)
            for i, h in enumerate(held)]
    plan = coalesce.plan(acks)
    for reply in (1, [1], [1, 1, 1], ResponseError("boom")):
        answers = coalesce.split(plan, [reply])
        for op, answer in zip(acks, answers, strict=True):
            if isinstance(answer, BaseException):
                assert answer is reply
                continue
            with pytest.raises((TypeError, ValueError)):
                op.read(answer)


async def test_a_settle_handed_over_lands_even_if_its_run_is_cancelled(
    redis_url: str, rclient: redis.Redis
) -> None:
    """Shutdown cancels the runs: a settle already handed to the settler is still awaited
    (shielded) and lands, so a task that finished is recorded as such."""
    app, echo = _app()
    async with runtime(redis_url, app) as rt:
        handle = await echo.apush(5)  # type: ignore[attr-defined]
        delivery = await rt.take_one()
        message = wire.decode(delivery.raw)
        landed: list[bool] = []

        async def ack() -> None:
            landed.append(await delivery.ack(message, _payload(handle.id, 5), 60))

        async with anyio.create_task_group() as tg:
            tg.start_soon(ack)
            await anyio.lowlevel.checkpoint()  # the ack is handed over, waits for its reply
            tg.cancel_scope.cancel()
        assert landed == [True]
        assert delivery.settled is not None and delivery.settled.accepted
    assert rclient.llen(keys.processing("default", rt.worker_id)) == 0
    assert rclient.exists(keys.result(handle.id))


async def test_a_settle_that_cannot_land_gives_up_after_the_bound() -> None:
    """Redis unreachable: the settler keeps trying, but the delivery waiting for it
    stops after the bound with SettleLate (its message stays for Phoenix)."""
    broker = Broker(App(redis_url="redis://127.0.0.1:1/0").async_client())
    settler = Settler(broker, bound_s=0.3)
    op = settles.ack(held=settles.Held(queue="q", worker_id="w", raw=b"m"), task_id="t",
                     result=b"", result_ttl_s=1)
    try:
        with anyio.fail_after(10):
            async with anyio.create_task_group() as tg:
                tg.start_soon(settler.run)
                started = anyio.current_time()
                reply = await settler.settle(op, shielded=True)
                waited = anyio.current_time() - started
                # A delivery whose settle had no reply in time stays unsettled (its
                # outcome is "interrupted", not "stale": nothing refused it).
                delivery = Delivery(b"m", "q", "w", settler)
                message = TaskMessage(id="t", task="x", args=[], kwargs={}, queue="q")
                assert await delivery.ack(message, b"", 1) is False
                assert delivery.settled is None
                tg.cancel_scope.cancel()
    finally:
        await broker.aclose()
    assert isinstance(reply, SettleLate) and "no reply" in reply.error
    assert 0.3 <= waited < 3
