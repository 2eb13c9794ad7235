"""Results as Celery's Redis backend keeps them: TTL, ignore_result, and waiting that
finds a result stored before the wait began, from sync and async code."""

from __future__ import annotations

import json

import pytest
import redis

from relier import TaskHandle
from relier.protocol import results
from relier.store import keys
from tests.conftest import StartWorker
from tests.polling import poll
from tests.taskapps import payments

APP = "tests.taskapps.payments:app"

pytestmark = pytest.mark.usefixtures("payments_app")


def test_results_expire_after_result_ttl(start_worker: StartWorker, rclient: redis.Redis) -> None:
    start_worker(APP, env={"RELIER_RESULT_TTL": "120"})
    handle = payments.refund.push("o-1")
    assert handle.result(timeout=30) == "refunded o-1"
    assert 0 < rclient.ttl(keys.result(handle.id)) <= 120


def test_ignore_result_stores_nothing(start_worker: StartWorker, rclient: redis.Redis) -> None:
    start_worker(APP)
    handle = payments.notify.push("cus_1")
    poll(lambda: rclient.llen("test:runs:notify"), 15, "the task to run")
    # Acked: no processing list holds it any more (the ack is where a result is written).
    poll(lambda: not rclient.keys("relier:{default}:processing:*"), 15, "the ack")
    assert not rclient.exists(keys.result(handle.id))
    assert handle.status() == results.PENDING


async def test_a_result_stored_before_the_wait_is_found_sync_and_async(
    start_worker: StartWorker, rclient: redis.Redis
) -> None:
    start_worker(APP)
    pushed = payments.refund.push("o-2")
    stored = poll(lambda: rclient.get(keys.result(pushed.id)), 30, "the result to be stored")
    assert json.loads(stored)["status"] == "SUCCESS"
    # Fresh handles, created after the result landed: nothing will be published again.
    late_sync: TaskHandle[str] = TaskHandle(payments.app, pushed.id)
    late_async: TaskHandle[str] = TaskHandle(payments.app, pushed.id)
    assert late_sync.result(timeout=5) == "refunded o-2"
    assert await late_async.aresult(timeout=5) == "refunded o-2"
