"""The resurrector and the orphan check in the test's event loop, against the real test
server: a dead worker's processing list goes to ``re-queue`` with its resurrection count
bumped, a live worker is left alone, a task past ``max_resurrections`` is quarantined,
and a message a live worker holds but never ran is given back after two looks."""

from __future__ import annotations

import time
from collections import Counter

import redis

from relier import App
from relier.protocol import dead_letter, registry
from relier.protocol import message as wire
from relier.runtime.orphans import OrphanWatch
from relier.runtime.phoenix import Resurrector
from relier.store import keys
from relier.store.broker import as_bytes
from tests.inprocess import Runtime, runtime


def _app() -> tuple[App, object]:
    app = App()

    @app.task(name="phoenix.work")
    async def work(i: int) -> int:
        return i

    return app, work


def _register(rclient: redis.Redis, worker_id: str, *, beating: bool) -> None:
    """A registry entry as a worker writes it; a heartbeat key only if it is alive."""
    now = time.time()
    info = registry.WorkerInfo(id=worker_id, host="testhost", pid=1, queues=["default"],
                               concurrency=4, started_at=now - 60, last_heartbeat=now - 30)
    rclient.hset(keys.WORKERS, worker_id, registry.encode(info))
    if beating:
        rclient.set(keys.heartbeat(worker_id), b"1", ex=60)


async def _taken_by(rt: Runtime, worker_id: str, count: int) -> list[bytes]:
    """Messages fetched into ``worker_id``'s processing list, as that worker would."""
    batch = await rt.broker.fetch(["default"], worker_id, count)
    assert len(batch) == count
    return [taken.raw for taken in batch]


async def test_a_dead_workers_messages_are_requeued_and_a_live_one_is_left_alone(
    redis_url: str, rclient: redis.Redis
) -> None:
    app, work = _app()
    async with runtime(redis_url, app, worker_id="the-resurrector") as rt:
        handles = await work.apush_many([((i,), {}) for i in range(3)])  # type: ignore[attr-defined]
        await _taken_by(rt, "dead-worker", 2)
        await _taken_by(rt, "live-worker", 1)
        _register(rclient, "dead-worker", beating=False)
        _register(rclient, "live-worker", beating=True)
        moved = await Resurrector(rt.broker, rt.worker_id, app.settings).sweep()
    assert moved == 2
    assert rclient.llen(keys.processing("default", "dead-worker")) == 0
    assert rclient.llen(keys.processing("default", "live-worker")) == 1
    requeue_list = keys.queue_list(keys.REQUEUE_QUEUE)
    requeued = [wire.decode(as_bytes(r)) for r in rclient.lrange(requeue_list, 0, -1)]
    assert len(requeued) == 2
    assert {m.resurrections for m in requeued} == {1}
    assert {m.id for m in requeued} < {h.id for h in handles}
    dead = registry.decode(rclient.hget(keys.WORKERS, "dead-worker"))
    assert dead.state == registry.DEAD and dead.resurrected == 2
    assert set(dead.resurrected_ids) == {m.id for m in requeued}
    live = registry.decode(rclient.hget(keys.WORKERS, "live-worker"))
    assert live.state != registry.DEAD


async def test_a_task_that_keeps_killing_workers_is_quarantined(
    redis_url: str, rclient: redis.Redis
) -> None:
    app, work = _app()
    app.configure(max_resurrections=2)  # the second death makes it poison
    async with runtime(redis_url, app, worker_id="the-resurrector") as rt:
        handle = await work.apush(5)  # type: ignore[attr-defined]
        for round_ in range(2):
            # The task was taken (from its queue, then from the suspect lane, where a task
            # that died alone goes) by a worker that died holding nothing else.
            source = "default" if round_ == 0 else keys.SUSPECT_QUEUE
            batch = await rt.broker.fetch([source], f"dead-{round_}", 1)
            assert len(batch) == 1
            now = time.time()
            info = registry.WorkerInfo(id=f"dead-{round_}", host="h", pid=1, queues=[source],
                                       concurrency=1, started_at=now, last_heartbeat=now)
            rclient.hset(keys.WORKERS, info.id, registry.encode(info))
            await Resurrector(rt.broker, rt.worker_id, app.settings).sweep()
    assert rclient.llen(keys.queue_list(keys.REQUEUE_QUEUE)) == 0
    assert rclient.llen(keys.queue_list(keys.SUSPECT_QUEUE)) == 0
    dlq = rclient.lrange(keys.dead_letters("default"), 0, -1)
    entries = [dead_letter.decode(as_bytes(e)) for e in dlq]
    assert [(e.reason, e.task_id) for e in entries] == [("poison", handle.id)]


async def test_the_orphan_check_gives_back_a_message_seen_twice_unaccounted(
    redis_url: str, rclient: redis.Redis
) -> None:
    app, work = _app()
    async with runtime(redis_url, app) as rt:
        await work.apush_many([((i,), {}) for i in range(2)])  # type: ignore[attr-defined]
        raws = await _taken_by(rt, rt.worker_id, 2)
        running, lost = raws
        # The worker runs one of them; the other's fetch reply was "lost".
        watch = OrphanWatch(rt.broker, ["default"], rt.worker_id,
                            lambda: Counter({running: 1}), interval_s=60)
        suspects = await watch.look(Counter())
        # One look is not enough: a message a waiter just moved looks the same.
        assert set(suspects) == {("default", lost)}
        assert rclient.llen(keys.processing("default", rt.worker_id)) == 2
        assert await watch.look(suspects) == Counter()
    assert rclient.lrange(keys.processing("default", rt.worker_id), 0, -1) == [running]
    assert rclient.lrange(keys.queue_list("default"), 0, -1) == [lost]


async def test_the_orphan_check_leaves_what_the_worker_runs(
    redis_url: str, rclient: redis.Redis
) -> None:
    app, work = _app()
    async with runtime(redis_url, app) as rt:
        await work.apush(1)  # type: ignore[attr-defined]
        raws = await _taken_by(rt, rt.worker_id, 1)
        watch = OrphanWatch(rt.broker, ["default"], rt.worker_id,
                            lambda: Counter(raws), interval_s=60)
        suspects = await watch.look(Counter())
        assert await watch.look(suspects) == Counter()
    assert rclient.lrange(keys.processing("default", rt.worker_id), 0, -1) == raws
    assert rclient.llen(keys.queue_list("default")) == 0
