"""Recovery keeps its bound next to a Redis restart, at default heartbeat settings.

A worker is killed (-9) while it runs a task, and Redis restarts (append-only file,
``appendfsync always``) right after. The resurrector must not wait a whole heartbeat TTL
on top of the restart: live workers only need one beat to show they live, and the dead
one's key is gone by then. Before this, the task ran again ~17 s after the kill.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator

import pytest
import redis

from relier.embedded import EmbeddedServer
from tests.conftest import StartWorker
from tests.polling import poll
from tests.taskapps import basic

APP = "tests.taskapps.basic:app"
#: The issue's target is p99 ≤ 12 s (heartbeat TTL 6 s); one extra second for a loaded box.
BOUND_S = 13.0


@pytest.fixture
def durable_server() -> Iterator[EmbeddedServer]:
    with EmbeddedServer(appendonly=True) as server:
        yield server


@pytest.fixture(autouse=True)
async def _point_app(durable_server: EmbeddedServer) -> AsyncIterator[None]:
    basic.app.configure(redis_url=durable_server.url)
    yield
    await basic.app.aclose()
    basic.app.close()


def starts(url: str) -> int:
    client = redis.Redis.from_url(url)
    try:
        return int(client.llen("test:started:restart"))
    except redis.RedisError:
        return 0  # the server is restarting
    finally:
        client.close()


def test_a_kill_next_to_a_redis_restart_runs_again_within_the_bound(
    start_worker: StartWorker, durable_server: EmbeddedServer
) -> None:
    url = durable_server.url
    victim = start_worker(APP, url=url)
    handle = basic.whoami.push("restart", 3.0)
    poll(lambda: starts(url) == 1, 30, "the first start")
    survivor = start_worker(APP, url=url)
    victim.process.kill()
    killed_at = time.monotonic()
    durable_server.restart(kill=True)
    poll(lambda: starts(url) == 2, 40, "the start after the kill")
    recovered_in = time.monotonic() - killed_at
    assert recovered_in <= BOUND_S, f"ran again {recovered_in:.1f}s after the kill"
    survivor_id = survivor.wait_for_line("consuming").split("worker ", 1)[1].split()[0]
    assert handle.result(timeout=30) == survivor_id
    assert "declared dead" in survivor.output
