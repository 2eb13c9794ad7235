"""The deferred-set pull in process, against the real server: a worker takes only what it
can run (task known, version high enough), straight into its processing list; bytes that
do not decode stay where they are, for the window's end to dead-letter."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import redis

from relier.runtime.capacity import Capacity
from relier.runtime.deferred import DeferredPuller
from relier.runtime.intake import Intake
from relier.store import keys
from tests.conftest import pointed_at
from tests.taskapps import deploy_v1, deploy_v2


@pytest.fixture(autouse=True)
async def apps(redis_url: str) -> AsyncIterator[None]:
    async with pointed_at(redis_url, deploy_v1.app, deploy_v2.app):
        yield


def defer_all(rclient: redis.Redis) -> list[bytes]:
    """Move what was pushed to `default` into its deferred set, as an old worker would."""
    moved = []
    while (raw := rclient.rpop("default")) is not None:
        rclient.zadd(keys.deferred("default"), {raw: 10**13})
        moved.append(raw)
    return moved


def puller(app_module: object, worker_id: str, taken: list[tuple[bytes, str]]
           ) -> DeferredPuller:
    app = app_module.app  # type: ignore[attr-defined]
    return DeferredPuller(app, app.broker(), ["default"], worker_id, Capacity(10), Intake(),
                          lambda raw, queue: taken.append((raw, queue)))


async def test_only_a_capable_worker_takes_a_deferred_message(rclient: redis.Redis) -> None:
    newer = deploy_v2.greet.push(deploy_v2.Person("Ada", "Lovelace"))
    same = deploy_v1.note.push("o-1")
    [raw_newer, raw_same] = defer_all(rclient)
    rclient.zadd(keys.deferred("default"), {b"\xff not a message": 1, b"[" * 5000: 2})
    taken: list[tuple[bytes, str]] = []

    assert await puller(deploy_v1, "old", taken).pull() == 1  # the v1 note only
    assert taken == [(raw_same, "default")]
    assert rclient.lrange(keys.processing("default", "old"), 0, -1) == [raw_same]

    assert await puller(deploy_v2, "new", taken).pull() == 1  # the v2 greet
    assert taken[-1] == (raw_newer, "default")
    assert rclient.lrange(keys.processing("default", "new"), 0, -1) == [raw_newer]
    assert same.id != newer.id
    # The undecodable members were left alone (the pump returns them at their window's end).
    assert rclient.zcard(keys.deferred("default")) == 2


async def test_a_closed_intake_or_full_worker_takes_nothing(rclient: redis.Redis) -> None:
    deploy_v1.note.push("o-2")
    defer_all(rclient)
    taken: list[tuple[bytes, str]] = []
    busy = Capacity(1)
    busy.take()
    full = DeferredPuller(deploy_v1.app, deploy_v1.app.broker(), ["default"], "w", busy,
                          Intake(), lambda *args: taken.append(args))
    assert await full.pull() == 0
    closed = Intake()
    closed.close()
    shut = DeferredPuller(deploy_v1.app, deploy_v1.app.broker(), ["default"], "w", Capacity(1),
                          closed, lambda *args: taken.append(args))
    assert await shut.pull() == 0
    assert taken == [] and rclient.zcard(keys.deferred("default")) == 1
