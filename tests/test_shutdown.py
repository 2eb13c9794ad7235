"""SIGTERM drains and requeues: nothing in flight is lost on deploy."""

from __future__ import annotations

import signal
import time

import pytest
import redis

from relier.store import keys
from tests.conftest import StartWorker
from tests.taskapps import basic

APP = "tests.taskapps.basic:app"


pytestmark = pytest.mark.usefixtures("basic_app")


def wait_started(client: redis.Redis, marker: str, count: int, timeout: float) -> list[bytes]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        started = client.lrange(f"test:started:{marker}", 0, -1)
        if len(started) >= count:
            return started
        time.sleep(0.02)
    raise AssertionError(f"only {client.llen(f'test:started:{marker}')} of {count} started")


def test_sigterm_requeues_unfinished_tasks_at_once(
    start_worker: StartWorker, rclient: redis.Redis
) -> None:
    worker = start_worker(APP, env={"RELIER_SHUTDOWN_GRACE": "1"})
    handles = basic.record_start.push_many([(("first", 60), {}) for _ in range(3)])
    quick = basic.add.push(1, 2)
    assert quick.result(timeout=10) == 3
    wait_started(rclient, "first", 3, timeout=10)

    signalled = time.monotonic()
    worker.signal(signal.SIGTERM)
    assert worker.wait(timeout=15) == 0
    assert time.monotonic() - signalled < 1 + 5  # the grace plus a generous bound
    assert "gave 3 unfinished message(s) back to 'default'" in worker.output
    # Nothing is left in a processing list, and the three wait at the head of the queue.
    assert rclient.keys("relier:{default}:processing:*") == []
    assert rclient.llen("default") == 3

    # A new worker starts them at once: no visibility timeout, no Phoenix wait.
    rclient.delete("test:started:first")
    restarted = time.monotonic()
    start_worker(APP)
    again = wait_started(rclient, "first", 3, timeout=10)
    assert time.monotonic() - restarted < 10
    assert {a.decode() for a in again} == {h.id for h in handles}


def test_second_signal_ends_the_grace_period(
    start_worker: StartWorker, rclient: redis.Redis
) -> None:
    worker = start_worker(APP, env={"RELIER_SHUTDOWN_GRACE": "120"})
    basic.record_start.push("second", 60)
    wait_started(rclient, "second", 1, timeout=10)
    worker.signal(signal.SIGTERM)
    worker.wait_for_line("waiting up to 120s")
    signalled = time.monotonic()
    worker.signal(signal.SIGINT)
    assert worker.wait(timeout=15) == 0
    assert time.monotonic() - signalled < 10
    assert rclient.llen(keys.queue_list("default")) == 1
