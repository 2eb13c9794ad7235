"""Logs that state one cause once: a blocked event loop is not a Redis outage, and an
outage is one line going down and one coming back, for the whole worker."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from relier.embedded import EmbeddedServer
from tests.conftest import StartWorker, WorkerProcess
from tests.taskapps import basic, timeouts


def warnings_about_redis(worker: WorkerProcess) -> list[str]:
    return [line for line in worker.output.splitlines()
            if "Redis" in line and " DEBUG " not in line]


@pytest.mark.usefixtures("timeouts_app")
def test_a_blocked_loop_is_not_reported_as_redis_unreachable(
    start_worker: StartWorker,
) -> None:
    worker = start_worker("tests.taskapps.timeouts:app",
                          env={"RELIER_LOOP_STALL_WARN": "1", "RELIER_LOOP_STALL_KILL": "0"})
    handle = timeouts.block_loop.push("blocked-not-down", 7.0)
    assert handle.result(timeout=60) == "unblocked"
    worker.wait_for_line("event loop turning again after a stall of")
    # The waiters' reads timed out on the blocked loop: said once at debug level, if at all.
    again = timeouts.block_loop.push("after", 0.0)
    assert again.result(timeout=60) == "unblocked"
    assert warnings_about_redis(worker) == [], worker.output
    # The waiters' reads timed out on the client's clock while the loop was held; the
    # worker knows why (its loop-lag probe saw the stall).
    assert "timed out because the event loop was blocked" in worker.output


@pytest.fixture
def server() -> Iterator[EmbeddedServer]:
    with EmbeddedServer(appendonly=True) as private:
        yield private


@pytest.fixture
async def on_server(server: EmbeddedServer) -> AsyncIterator[None]:
    basic.app.configure(redis_url=server.url)
    yield
    await basic.app.aclose()
    basic.app.close()


@pytest.mark.usefixtures("on_server")
def test_an_outage_is_one_line_down_and_one_line_back(
    start_worker: StartWorker, server: EmbeddedServer,
) -> None:
    worker = start_worker("tests.taskapps.basic:app", url=server.url)
    server.stop()
    down = worker.wait_for_line("Redis unreachable", timeout=30)
    server.start()
    back = worker.wait_for_line("Redis reachable again after", timeout=60)
    basic.app.close()  # its pooled connection died with the old server
    handles = basic.add.push_many([((i, 1), {}) for i in range(20)])
    assert [h.result(timeout=60) for h in handles] == [i + 1 for i in range(20)]
    # Every loop (the batch fetch and one waiter per queue) lost Redis; one line says so.
    assert warnings_about_redis(worker) == [down, back], worker.output
    assert "WARNING" in down and "retries with backoff" in down
