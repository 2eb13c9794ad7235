"""``app.lock``: mutual exclusion across processes and tasks, fencing tokens, expiry."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import AsyncIterator

import anyio
import pytest
import redis

import relier.lock
from relier import App, LockLost, LockTimeout
from relier.store import keys
from tests.conftest import ROOT
from tests.taskapps import lock_contender


@pytest.fixture
async def app(redis_url: str) -> AsyncIterator[App]:
    app = App(redis_url=redis_url)
    yield app
    await app.aclose()
    app.close()


def test_processes_take_turns_and_tokens_only_grow(redis_url: str, rclient: redis.Redis) -> None:
    rounds, processes = 15, 4
    contenders = [
        subprocess.Popen([sys.executable, "-m", "tests.taskapps.lock_contender", redis_url,
                          str(rounds)], cwd=ROOT)
        for _ in range(processes)
    ]
    for contender in contenders:
        assert contender.wait(timeout=90) == 0
    # Unprotected, the read-modify-write would lose increments.
    assert int(rclient.get(lock_contender.COUNTER) or 0) == rounds * processes
    tokens = [int(t) for t in rclient.lrange(lock_contender.TOKENS, 0, -1)]
    # Noted inside the lock, in the order the holds happened: strictly increasing.
    assert tokens == sorted(set(tokens)) and len(tokens) == rounds * processes
    assert rclient.exists(keys.lock("shared")) == 0  # every hold was released


async def take_turns(app: App, counter: str, tasks: int) -> None:
    """``tasks`` concurrent read-modify-writes of ``counter``, each under the lock
    ``counter``: none is lost, and the tokens only grow (also run on a cluster)."""
    client = app.broker().client
    entered: list[int] = []

    async def bump() -> None:
        async with app.lock("counter", ttl=10) as lock:
            assert lock.token is not None and await lock.aowned()
            entered.append(lock.token)
            value = int(await client.get(counter) or 0)
            await anyio.sleep(0.01)
            await client.set(counter, value + 1)

    async with anyio.create_task_group() as tg:
        for _ in range(tasks):
            tg.start_soon(bump)
    assert int(await client.get(counter)) == tasks
    assert entered == sorted(set(entered))


async def test_tasks_take_turns(app: App) -> None:
    await take_turns(app, "n", 20)


async def test_an_expired_lease_is_taken_over_and_the_loser_is_told(app: App) -> None:
    first = app.lock("job", ttl=0.3)
    first_token = await first.aacquire()
    second = app.lock("job", ttl=10, timeout=30)
    # Waits for the first lease to run out (nobody releases it).
    second_token = await second.aacquire()
    assert second_token > first_token
    assert not await first.aowned() and await second.aowned()
    with pytest.raises(LockLost) as lost:
        await first.aextend()
    assert lost.value.token == first_token
    assert first.token is None
    # The loser cannot release (nor extend) the new holder's lock.
    assert await app.broker().client.exists(keys.lock("job")) == 1
    await second.arelease()
    assert await app.broker().client.exists(keys.lock("job")) == 0


async def test_leaving_the_block_after_losing_the_lease_raises(app: App) -> None:
    with pytest.raises(LockLost):
        async with app.lock("brief", ttl=0.2):
            await anyio.sleep(0.6)
    # A block that failed on its own keeps its own error.
    with pytest.raises(ZeroDivisionError):
        async with app.lock("brief", ttl=0.2):
            await anyio.sleep(0.6)
            _ = 1 / 0


async def test_extend_keeps_the_lock_past_its_first_lease(app: App) -> None:
    lock = app.lock("long", ttl=0.5)
    async with lock:
        for _ in range(4):
            await anyio.sleep(0.25)
            await lock.aextend()
        assert await lock.aowned()
        assert 0 < lock.remaining <= 0.5


async def test_a_waiter_is_woken_by_the_release(
    app: App, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Without the release announcement, the waiter would sleep until the holder's lease
    # (60 s) ran out, well past its own 20 s timeout.
    monkeypatch.setattr(relier.lock, "MAX_WAIT_S", 120.0)
    holder = app.lock("busy", ttl=60)
    await holder.aacquire()
    got: list[int] = []

    async def wait_for_it() -> None:
        got.append(await app.lock("busy", ttl=5, timeout=20).aacquire())

    async with anyio.create_task_group() as tg:
        tg.start_soon(wait_for_it)
        await anyio.sleep(0.3)
        assert got == []
        await holder.arelease()
    assert got and got[0] > (holder.token or 0)


async def test_timeouts(app: App) -> None:
    async with app.lock("held", ttl=30):
        with pytest.raises(LockTimeout):
            await app.lock("held", ttl=30, timeout=0).aacquire()
        with pytest.raises(LockTimeout):
            await app.lock("held", ttl=30, timeout=0.3).aacquire()


def test_sync_form(app: App, rclient: redis.Redis) -> None:
    with app.lock("sync", ttl=5) as lock:
        first = lock.token
        assert lock.owned()
        with pytest.raises(LockTimeout):
            app.lock("sync", ttl=5, timeout=0.2).acquire()
        lock.extend(10)
        assert 9000 < rclient.pttl(keys.lock("sync")) <= 10000
    assert not lock.owned() and rclient.exists(keys.lock("sync")) == 0
    with app.lock("sync", ttl=5) as again:
        assert again.token == (first or 0) + 1
    brief = app.lock("sync", ttl=0.1)
    brief.acquire()
    taker = app.lock("sync", ttl=5, timeout=10)
    taker.acquire()
    with pytest.raises(LockLost):
        brief.release()
    taker.release()


def test_bad_arguments_fail_clearly(app: App) -> None:
    with pytest.raises(ValueError, match="ttl must be positive"):
        app.lock("x", ttl=0)
    with pytest.raises(ValueError, match="non-empty name"):
        app.lock("", ttl=1)
    with pytest.raises(RuntimeError, match="not held"):
        app.lock("x", ttl=1).release()
