"""Admission control: a full queue refuses a push at enqueue time, atomically, and says
when to come back. Real Redis, real worker subprocesses."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator

import pytest
import redis

from relier import AdmissionRejectedError, App
from relier.embedded import EmbeddedServer
from relier.store import keys
from tests.conftest import StartWorker
from tests.polling import poll

APP = "tests.taskapps.basic:app"
LIMIT = 5


@pytest.fixture
async def limited(redis_url: str) -> AsyncIterator[App]:
    """The tests' basic App with ``default`` limited to LIMIT waiting messages."""
    from tests.taskapps import basic

    basic.app.configure(redis_url=redis_url, queue_limits={"default": LIMIT})
    yield basic.app
    await basic.app.aclose()
    basic.app.close()
    basic.app.configure(queue_limits={})


def waiting(client: redis.Redis, queue: str = "default") -> int:
    return sum(int(client.llen(name)) for name in keys.queue_lists(queue))


def test_a_full_queue_refuses_the_next_push_and_holds_exactly_its_limit(
    limited: App, rclient: redis.Redis, start_worker: StartWorker
) -> None:
    from tests.taskapps import basic

    accepted = [basic.add.push(i, i) for i in range(LIMIT)]
    with pytest.raises(AdmissionRejectedError) as refused:
        basic.add.push(99, 99)
    error = refused.value
    assert (error.queue, error.depth, error.limit, error.reason) == ("default", LIMIT, LIMIT,
                                                                     "depth")
    assert error.retry_after > 0
    assert waiting(rclient) == LIMIT
    assert int(rclient.hget(keys.stats("default"), "rejected") or 0) == 1

    start_worker(APP)
    assert [h.result(timeout=30) for h in accepted] == [2 * i for i in range(LIMIT)]
    poll(lambda: waiting(rclient) == 0, 15, "the queue to drain")
    assert basic.add.push(1, 2).result(timeout=30) == 3


async def test_async_push_and_bulk_push_are_all_or_nothing(
    limited: App, rclient: redis.Redis
) -> None:
    from tests.taskapps import basic

    await basic.add.apush_many([((i, 0), {}) for i in range(3)])
    with pytest.raises(AdmissionRejectedError) as refused:
        await basic.add.apush_many([((i, 1), {}) for i in range(3)])  # 3 + 3 > 5
    assert refused.value.depth == 3
    assert waiting(rclient) == 3
    with pytest.raises(AdmissionRejectedError):
        basic.add.push_many([((i, 1), {}) for i in range(3)])
    await basic.add.apush_many([((i, 2), {}) for i in range(2)])  # 3 + 2 fits exactly
    assert waiting(rclient) == LIMIT
    with pytest.raises(AdmissionRejectedError):
        await basic.add.apush(1, 1)


def test_delayed_messages_count_against_the_limit(limited: App, rclient: redis.Redis) -> None:
    from tests.taskapps import basic

    basic.add.options(countdown=3600).push_many([((i, 0), {}) for i in range(LIMIT)])
    assert rclient.zcard(keys.delayed("default")) == LIMIT
    with pytest.raises(AdmissionRejectedError):
        basic.add.push(1, 1)


def test_a_task_limit_overrides_the_queue_limit(redis_url: str, rclient: redis.Redis) -> None:
    app = App(redis_url=redis_url, queue_limits={"default": 100})

    @app.task(name="admission.capped", max_queue_depth=2)
    async def capped(n: int) -> int:
        return n

    @app.task(name="admission.free")
    async def free(n: int) -> int:
        return n

    capped.push(1)
    capped.push(2)
    with pytest.raises(AdmissionRejectedError) as refused:
        capped.push(3)
    assert refused.value.limit == 2
    free.push(3)  # the queue's own limit of 100 still has room
    assert waiting(rclient) == 3
    app.close()


def test_limits_come_from_the_environment(
    redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RELIER_QUEUE_LIMITS", "high_priority=1,default=3")
    app = App(redis_url=redis_url)

    @app.task(name="admission.urgent", queue="high_priority")
    async def urgent() -> None:
        return None

    urgent.push()
    with pytest.raises(AdmissionRejectedError) as refused:
        urgent.push()
    assert (refused.value.queue, refused.value.limit) == ("high_priority", 1)
    app.close()


def test_retry_after_follows_the_measured_drain_rate(
    limited: App, rclient: redis.Redis
) -> None:
    from tests.taskapps import basic

    basic.add.push_many([((i, 0), {}) for i in range(LIMIT)])
    # Nothing has drained this queue: the floor.
    with pytest.raises(AdmissionRejectedError) as idle:
        basic.add.push(0, 0)
    assert idle.value.retry_after == 5.0
    # A queue draining 2 messages/s, measured just now: 3 over the limit waits ~1.5 s.
    now_ms = int(time.time() * 1000)
    rclient.hset(keys.stats("default"), mapping={"rate": 2, "window_start_ms": now_ms})
    with pytest.raises(AdmissionRejectedError) as draining:
        basic.add.push_many([((i, 1), {}) for i in range(3)])
    assert draining.value.retry_after == 1.5


def test_workers_measure_the_drain_rate(
    redis_url: str, rclient: redis.Redis, start_worker: StartWorker
) -> None:
    from tests.taskapps import basic

    basic.app.configure(redis_url=redis_url)
    start_worker(APP)
    handles = basic.add.push_many([((i, 0), {}) for i in range(50)])
    for handle in handles:
        handle.result(timeout=30)
    stats = {k.decode(): v.decode() for k, v in rclient.hgetall(keys.stats("default")).items()}
    assert int(stats["fetched"]) == 50
    assert "window_start_ms" in stats
    basic.app.close()


@pytest.fixture
def tiny_redis() -> Iterator[EmbeddedServer]:
    """A server of its own, so that lowering its maxmemory cannot disturb other tests."""
    with EmbeddedServer() as server:
        client = redis.Redis.from_url(server.url)
        used = int(client.info("memory")["used_memory"])
        client.config_set("maxmemory", used * 2)
        client.close()
        yield server


def test_the_memory_guard_refuses_before_redis_is_full(tiny_redis: EmbeddedServer) -> None:
    app = App(redis_url=tiny_redis.url, broker_memory_limit=0.5)

    @app.task(name="admission.bulky")
    async def bulky(blob: str) -> None:
        return None

    with pytest.raises(AdmissionRejectedError) as refused:
        bulky.push("x")
    assert refused.value.reason == "memory"
    assert "maxmemory" in str(refused.value)
    client = redis.Redis.from_url(tiny_redis.url)
    assert client.llen(keys.queue_list("default")) == 0
    client.close()

    app.configure(broker_memory_limit=0)  # the guard off: Redis itself decides
    bulky.push("x")
    app.close()


async def test_redis_refusing_a_push_for_memory_is_an_admission_rejection(
    tiny_redis: EmbeddedServer,
) -> None:
    app = App(redis_url=tiny_redis.url, broker_memory_limit=0)  # no guard: Redis says no

    @app.task(name="admission.flood")
    async def flood(blob: str) -> None:
        return None

    client = redis.Redis.from_url(tiny_redis.url)
    client.config_set("maxmemory", int(client.info("memory")["used_memory"]) // 2)
    try:
        with pytest.raises(AdmissionRejectedError) as refused:
            flood.push("x")
        assert refused.value.reason == "memory"
        with pytest.raises(AdmissionRejectedError):
            await flood.apush("x")
        assert client.llen(keys.queue_list("default")) == 0
    finally:
        client.config_set("maxmemory", 0)
        client.close()
        await app.aclose()
        app.close()
