"""Interop with a real Celery 5, both ways, on the real Redis of the test session.

1. A Celery producer (``send_task``) feeds a Relier worker subprocess; Celery's own
   ``AsyncResult`` reads what the Relier worker stored.
2. A Relier producer feeds a real ``celery worker`` subprocess; Relier's handle reads
   what Celery stored.
3. The hand-built wire vectors of ``tests/vectors`` (bytes a real Celery 5.7 worker ran)
   are LPUSHed verbatim for a Relier worker; Celery's ``AsyncResult`` reads the results.

Broker and result backend are the same database: Relier keeps results where Celery's
Redis backend does, in the broker's database.
"""

from __future__ import annotations

import base64
import json
import os
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import redis
from celery import Celery
from celery.exceptions import TaskRevokedError
from kombu import pools

from relier import App, TaskFailed
from relier.store import keys
from tests.conftest import StartWorker, WorkerProcess
from tests.taskapps import interop_relier
from tests.taskapps.interop_celery import URL_ENV

RELIER_APP = "tests.taskapps.interop_relier:app"
CELERY_APP = "tests.taskapps.interop_celery"
VECTORS = Path(__file__).resolve().parent / "vectors"
#: Seconds to wait for any one result. Generous: a noisy 2-core machine is slow, and a
#: broken interop shows up as a wrong value or an exception, not as lateness.
RESULT_TIMEOUT = 30.0
#: Seconds a Celery worker may take to print its "ready" line.
CELERY_READY_TIMEOUT = 90.0
#: How early a Relier worker may start a task before its eta (its ETA_TOLERANCE_S).
ETA_TOLERANCE = 0.05


def unique_queue(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


# -- Celery client (the producer / result reader in this process) -------------------------


def close_celery(app: Celery) -> None:
    """Close every socket a Celery app opened in this process.

    ``Celery.close()`` closes nothing: the result backend keeps a pub/sub connection and
    a pool, and ``send_task`` takes connections from kombu's process-wide pools.
    """
    consumer = app.backend.result_consumer
    # An AsyncResult collected later unsubscribes from its channel in __del__; with no
    # channel left subscribed it does nothing (instead of reconnecting a closed pubsub).
    consumer.subscribed_to.clear()
    consumer.stop()
    app.backend.client.connection_pool.disconnect()
    producer_pool = app.amqp._producer_pool
    if producer_pool is not None:
        producer_pool.force_close_all()
        producer_pool.connections.force_close_all()
        # kombu keys these groups by connection; drop this app's entries.
        for group in (pools.producers, pools.connections):
            for key, value in list(dict.items(group)):
                if value is producer_pool or value is producer_pool.connections:
                    dict.__delitem__(group, key)
    if app._pool is not None:
        app._pool.force_close_all()
    app.close()


# -- Celery worker subprocess --------------------------------------------------------------

StartCelery = Callable[[str], WorkerProcess]


@pytest.fixture
def start_celery_worker(redis_url: str) -> Iterator[StartCelery]:
    """Start real ``celery worker`` subprocesses (solo pool); all are killed at teardown."""
    started: list[WorkerProcess] = []

    def start(queue: str) -> WorkerProcess:
        args = [
            sys.executable, "-m", "celery", "-A", CELERY_APP, "worker",
            "-P", "solo", "-Q", queue, "-n", f"interop-{uuid.uuid4().hex[:8]}@%h",
            "--without-mingle", "--without-gossip", "--without-heartbeat", "-l", "info",
        ]
        env = {**os.environ, "PYTHONUNBUFFERED": "1", URL_ENV: redis_url}
        worker = WorkerProcess(args, env)
        started.append(worker)
        worker.wait_for_line(" ready.", timeout=CELERY_READY_TIMEOUT)
        return worker

    yield start
    for worker in started:
        worker.kill()


@pytest.fixture
async def relier_producer(redis_url: str) -> AsyncIterator[App]:
    """The Relier App whose tasks stand in for the Celery worker's, on this database."""
    producer = interop_relier.producer
    producer.configure(redis_url=redis_url)
    yield producer
    await producer.aclose()
    producer.close()


# == 1. Celery producer -> Relier worker ===================================================


def test_celery_send_task_runs_on_relier_worker(
    start_worker: StartWorker, celery_client: Celery, rclient: redis.Redis
) -> None:
    queue = unique_queue("c2r")
    start_worker(RELIER_APP, queues=queue)
    result = celery_client.send_task("interop.add", (2, 3), {"z": 4}, queue=queue)
    assert result.get(timeout=RESULT_TIMEOUT) == 9
    assert result.state == "SUCCESS"
    assert result.date_done is not None
    # Stored as Celery's backend stores it: a key with a TTL, holding the task id.
    stored = json.loads(rclient.get(keys.result(result.id)) or b"{}")
    assert stored["task_id"] == result.id
    assert stored["status"] == "SUCCESS"
    assert rclient.ttl(keys.result(result.id)) > 0


def test_relier_failure_is_reraised_by_celery(
    start_worker: StartWorker, celery_client: Celery
) -> None:
    queue = unique_queue("c2r-fail")
    start_worker(RELIER_APP, queues=queue)
    builtin = celery_client.send_task("interop.fail", ("boom ☃",), queue=queue)
    custom = celery_client.send_task("interop.custom_fail", ("custom",), queue=queue)

    with pytest.raises(ValueError) as caught:
        builtin.get(timeout=RESULT_TIMEOUT)
    assert type(caught.value) is ValueError
    assert caught.value.args == ("boom ☃", 7)
    assert builtin.state == "FAILURE"
    assert "ValueError" in (builtin.traceback or "")

    # A non-builtin class is found by its module (imported here), so it is rebuilt as itself.
    with pytest.raises(interop_relier.InteropError) as caught_custom:
        custom.get(timeout=RESULT_TIMEOUT)
    assert type(caught_custom.value) is interop_relier.InteropError
    assert caught_custom.value.args == ("custom",)
    assert custom.state == "FAILURE"


def test_celery_priority_buckets_are_consumed_by_relier(
    start_worker: StartWorker, celery_client: Celery, rclient: redis.Redis
) -> None:
    queue = unique_queue("c2r-prio")
    # Sent before any worker runs, so the lists can be inspected; priority 9 first.
    late = celery_client.send_task("interop.stamp", ("p9",), queue=queue, priority=9)
    early = celery_client.send_task("interop.stamp", ("p0",), queue=queue, priority=0)

    bucket9 = rclient.lrange(f"{queue}\x06\x169", 0, -1)
    assert [json.loads(raw)["headers"]["id"] for raw in bucket9] == [late.id]
    assert json.loads(bucket9[0])["properties"]["priority"] == 9
    bucket0 = rclient.lrange(queue, 0, -1)
    assert [json.loads(raw)["headers"]["id"] for raw in bucket0] == [early.id]

    # One slot: the worker takes one message at a time, lowest priority number first.
    start_worker(RELIER_APP, "--concurrency", "1", queues=queue)
    ran_late = late.get(timeout=RESULT_TIMEOUT)
    ran_early = early.get(timeout=RESULT_TIMEOUT)
    assert ran_late["label"] == "p9" and ran_early["label"] == "p0"
    assert ran_early["ran_at"] < ran_late["ran_at"]
    assert rclient.llen(f"{queue}\x06\x169") == 0


def test_celery_countdown_is_not_run_before_its_eta(
    start_worker: StartWorker, celery_client: Celery
) -> None:
    queue = unique_queue("c2r-eta")
    start_worker(RELIER_APP, queues=queue)
    sent_at = time.time()
    # Celery turns countdown=1 into an eta header >= sent_at + 1.
    delayed = celery_client.send_task("interop.stamp", ("eta",), queue=queue, countdown=1)
    at_once = celery_client.send_task("interop.stamp", ("now",), queue=queue)

    ran_now = at_once.get(timeout=RESULT_TIMEOUT)
    ran_delayed = delayed.get(timeout=RESULT_TIMEOUT)
    assert ran_delayed["label"] == "eta"
    waited = ran_delayed["ran_at"] - sent_at
    assert waited >= 1.0 - ETA_TOLERANCE, f"ran {waited:.3f}s after sending, before its eta"
    assert waited < RESULT_TIMEOUT
    # The held message did not block the queue: the task sent after it ran first.
    assert ran_now["ran_at"] < ran_delayed["ran_at"]


def test_celery_expires_in_the_past_gives_revoked(
    start_worker: StartWorker, celery_client: Celery
) -> None:
    queue = unique_queue("c2r-expired")
    start_worker(RELIER_APP, queues=queue)
    past = datetime.now(UTC) - timedelta(seconds=30)
    expired = celery_client.send_task("interop.stamp", ("never",), queue=queue, expires=past)
    with pytest.raises(TaskRevokedError, match="expired"):
        expired.get(timeout=RESULT_TIMEOUT)
    assert expired.state == "REVOKED"
    # A live task on the same queue still runs: the worker is fine, only that one expired.
    fresh = celery_client.send_task("interop.add", (1, 1), queue=queue)
    assert fresh.get(timeout=RESULT_TIMEOUT) == 2


async def test_celery_reads_the_result_of_an_idempotent_relier_call(
    start_worker: StartWorker, celery_client: Celery, redis_url: str
) -> None:
    queue = unique_queue("idem")
    interop_relier.app.configure(redis_url=redis_url)
    try:
        start_worker(RELIER_APP, queues=queue)
        first = interop_relier.quote.options(queue=queue).push("sku-1", 4)
        value = first.result(timeout=RESULT_TIMEOUT)
        duplicate = interop_relier.quote.options(queue=queue).push("sku-1", 4)
        assert duplicate.id == first.id
        assert duplicate.result(timeout=0) == value
        assert celery_client.AsyncResult(first.id).get(timeout=RESULT_TIMEOUT) == value
    finally:
        await interop_relier.app.aclose()
        interop_relier.app.close()


# == 2. Relier producer -> Celery worker ===================================================


def test_relier_push_runs_on_celery_worker_sync(
    start_celery_worker: StartCelery, relier_producer: App, rclient: redis.Redis
) -> None:
    queue = unique_queue("r2c")
    # Pushed before the Celery worker starts, so the priority bucket can be inspected.
    urgent = interop_relier.celery_mul.options(queue=queue, priority=9).push(6, 7)
    assert [json.loads(raw)["headers"]["id"]
            for raw in rclient.lrange(f"{queue}\x06\x169", 0, -1)] == [urgent.id]
    start_celery_worker(queue)
    assert urgent.result(timeout=RESULT_TIMEOUT) == 42
    assert urgent.status() == "SUCCESS"
    with_kwargs = interop_relier.celery_mul.options(queue=queue).push(2, 3, z=4)
    assert with_kwargs.result(timeout=RESULT_TIMEOUT) == 24


async def test_relier_apush_runs_on_celery_worker_async(
    start_celery_worker: StartCelery, relier_producer: App
) -> None:
    queue = unique_queue("r2c-async")
    start_celery_worker(queue)
    handle = await interop_relier.celery_mul.options(queue=queue).apush(3, 5, z=2)
    assert await handle.aresult(timeout=RESULT_TIMEOUT) == 30
    assert await handle.astatus() == "SUCCESS"

    payload: dict[str, object] = {"text": "hé ☃ 😀", "n": [1, 2.5, None, True]}
    echo = await interop_relier.celery_echo.options(queue=queue).apush(payload)
    seen = await echo.aresult(timeout=RESULT_TIMEOUT)
    # What Celery's worker read out of Relier's headers and body.
    assert seen == {
        "payload": payload,
        "id": echo.id,
        "task": "interop.celery_echo",
        "retries": 0,
        "root_id": echo.id,
        "routing_key": queue,
    }


async def test_celery_failure_raises_task_failed_in_relier(
    start_celery_worker: StartCelery, relier_producer: App
) -> None:
    queue = unique_queue("r2c-fail")
    start_celery_worker(queue)
    builtin = await interop_relier.celery_fail.options(queue=queue).apush("bad ☃")
    with pytest.raises(TaskFailed) as caught:
        await builtin.aresult(timeout=RESULT_TIMEOUT)
    assert caught.value.status == "FAILURE"
    assert caught.value.exc_type == "ValueError"
    assert caught.value.exc_module == "builtins"
    assert caught.value.exc_message == ["bad ☃", 7]
    assert "ValueError" in (caught.value.remote_traceback or "")

    custom = interop_relier.celery_custom_fail.options(queue=queue).push("custom")
    with pytest.raises(TaskFailed) as caught_sync:
        custom.result(timeout=RESULT_TIMEOUT)
    assert caught_sync.value.exc_type == "InteropError"
    assert caught_sync.value.exc_module == "tests.taskapps.interop_celery"
    assert caught_sync.value.exc_message == ["custom"]

    # Relier's expires header: Celery's worker revokes the message instead of running it.
    past = datetime.now(UTC) - timedelta(seconds=30)
    expired = await interop_relier.celery_mul.options(queue=queue, expires=past).apush(1, 1)
    with pytest.raises(TaskFailed) as caught_expired:
        await expired.aresult(timeout=RESULT_TIMEOUT)
    assert caught_expired.value.status == "REVOKED"
    assert caught_expired.value.exc_type == "TaskRevokedError"
    assert caught_expired.value.exc_module == "celery.exceptions"
    assert caught_expired.value.exc_message == ["expired"]


# == 3. Wire vectors replayed through a Relier worker =====================================


def _task_id(envelope: dict[str, Any]) -> str:
    """The task id: a v2 header, or (protocol v1) a field of the body."""
    if "id" in envelope["headers"]:
        return str(envelope["headers"]["id"])
    body = envelope["body"]
    payload = base64.b64decode(body) if envelope["properties"].get("body_encoding") else body
    return str(json.loads(payload)["id"])


def _wait_until_settled(rclient: redis.Redis, queue: str, timeout: float) -> None:
    """Wait until no message is on the queue's lists or held by a worker of it.

    A Relier worker moves a message atomically from the queue into its processing list
    and removes it from there in the same script that stores the result, so once both
    are empty any result is already stored.
    """
    deadline = time.monotonic() + timeout
    while True:
        held = sum(rclient.llen(name) for name in keys.queue_lists(queue))
        held += sum(rclient.llen(name)
                    for name in rclient.scan_iter(match=keys.processing(queue, "*")))
        if held == 0:
            return
        assert time.monotonic() < deadline, f"{held} message(s) still unsettled on {queue!r}"
        time.sleep(0.05)


@pytest.mark.parametrize(
    ("vector", "expected"),
    [
        ("handbuilt_full.json", 142),
        # Protocol v1: the id is in the body, not in a header.
        ("handbuilt_v1.json", 6),
        ("handbuilt_rawbody.json", 142),
        ("handbuilt_raw_utf8.json", {"args": ["hé ☃ 😀"], "kwargs": {"clé": "ü"}}),
    ],
)
def test_vector_replayed_through_relier_worker(
    vector: str,
    expected: object,
    start_worker: StartWorker,
    celery_client: Celery,
    rclient: redis.Redis,
) -> None:
    raw = (VECTORS / vector).read_bytes()
    envelope = json.loads(raw)
    task_id = _task_id(envelope)
    queue = envelope["properties"]["delivery_info"]["routing_key"]
    assert queue == "celery"
    start_worker(RELIER_APP, queues=queue)

    rclient.lpush(keys.queue_list(queue, envelope["properties"].get("priority")), raw)
    _wait_until_settled(rclient, queue, RESULT_TIMEOUT)
    result = celery_client.AsyncResult(task_id)
    # Settled, so the result is stored already: get() finds it with its first read.
    assert result.get(timeout=5) == expected
    assert result.state == "SUCCESS"
    stored = json.loads(rclient.get(keys.result(task_id)) or b"{}")
    assert (stored["status"], stored["task_id"]) == ("SUCCESS", task_id)
    assert rclient.ttl(keys.result(task_id)) > 0
