"""A Redis that restarts under a busy worker: the worker resumes by itself, nothing lost."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import pytest
import redis

from relier.embedded import EmbeddedServer
from relier.protocol import results
from relier.store import keys
from tests.conftest import StartWorker
from tests.taskapps import basic

APP = "tests.taskapps.basic:app"


@pytest.fixture(autouse=True)
async def _point_app(durable_server: EmbeddedServer) -> AsyncIterator[None]:
    basic.app.configure(redis_url=durable_server.url)
    yield
    await basic.app.aclose()
    basic.app.close()


def test_worker_resumes_after_redis_restart(
    start_worker: StartWorker, durable_server: EmbeddedServer
) -> None:
    worker = start_worker(APP, "--concurrency", "10", url=durable_server.url)
    handles = basic.sleep.push_many([((0.05,), {}) for _ in range(300)])
    client = redis.Redis.from_url(durable_server.url)
    try:
        deadline = time.monotonic() + 30
        while client.llen("default") > 250:  # well under way
            assert time.monotonic() < deadline
            time.sleep(0.01)
        client.close()
        durable_server.restart(kill=True)
        # A quick restart may be a blip to every loop (one failure each: debug lines), so
        # no outage line is promised here; every task finishing is.

        client = redis.Redis.from_url(durable_server.url)
        deadline = time.monotonic() + 60
        pending = {h.id for h in handles}
        while pending:
            assert time.monotonic() < deadline, f"{len(pending)} task(s) never finished"
            with client.pipeline(transaction=False) as pipe:
                for task_id in pending:
                    pipe.get(keys.result(task_id))
                found = pipe.execute()
            pending = {t for t, raw in zip(pending, found, strict=True)
                       if raw is None or results.decode(raw).status != "SUCCESS"}
            time.sleep(0.05)
        assert worker.process.poll() is None, "the worker must survive the outage"
    finally:
        client.close()
