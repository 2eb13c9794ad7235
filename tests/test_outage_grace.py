"""The resurrector after an outage, in process against a private server it restarts.

After a Redis restart (which redis-py may hide by reconnecting) the resurrector judges no
one for one heartbeat interval plus a margin, long enough for live workers to re-arm the
heartbeat keys the outage let lapse, and much less than a whole TTL.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import anyio
import pytest

from relier import App
from relier.embedded import EmbeddedServer
from relier.protocol import registry
from relier.runtime.phoenix import Resurrector, outage_grace
from relier.settings import Settings
from relier.store import keys
from relier.store.broker import REDIS_ERRORS, Broker


@pytest.fixture
async def restartable() -> AsyncIterator[tuple[EmbeddedServer, Broker, Settings]]:
    with EmbeddedServer(appendonly=True) as server:
        app = App(redis_url=server.url)
        yield server, app.broker(), app.settings
        await app.aclose()
        app.close()


async def judging(resurrector: Resurrector) -> bool:
    """One look, handled as the resurrector's loop does: an error starts the grace too."""
    try:
        return await resurrector._settled_after_outage()
    except REDIS_ERRORS:
        resurrector._after_outage()
        return False


def test_the_grace_is_one_beat_not_a_ttl() -> None:
    defaults = Settings()
    assert outage_grace(defaults) == defaults.heartbeat_interval + 1.0 < defaults.heartbeat_ttl
    short = defaults.replace(heartbeat_interval=1.0, heartbeat_ttl=1.5)
    assert outage_grace(short) == 1.5  # never more than the TTL


async def test_a_restart_seen_only_by_its_run_id_pauses_judging(
    restartable: tuple[EmbeddedServer, Broker, Settings],
) -> None:
    server, broker, settings = restartable
    resurrector = Resurrector(broker, "leader", settings)
    assert await judging(resurrector)
    assert await judging(resurrector)  # same server: judging goes on

    # A live worker whose heartbeat key the outage let lapse.
    now = time.time()
    live = registry.WorkerInfo(id="live", host="h", pid=1, queues=["default"], concurrency=1,
                               started_at=now, last_heartbeat=now)
    await broker.client.hset(keys.WORKERS, "live", registry.encode(live))
    server.restart(kill=True)
    paused_at = time.monotonic()
    assert not await judging(resurrector)
    assert not await judging(resurrector)  # reconnected: the new run id keeps it paused
    await broker.client.set(keys.heartbeat("live"), now, px=6000)  # its next beat
    while not await judging(resurrector):
        assert time.monotonic() - paused_at < settings.heartbeat_ttl
        await anyio.sleep(0.05)
    assert time.monotonic() - paused_at >= outage_grace(settings) - 0.1
    assert await resurrector.sweep() == 0
    entry = registry.decode(await broker.client.hget(keys.WORKERS, "live"))
    assert entry.state == registry.ALIVE
