"""Edge cases a worker must survive without losing or double-running work: a task raising
CancelledError itself, two messages sharing one task id, Redis refusing writes (OOM), an
idle spell before a burst, a poison idempotent call."""

from __future__ import annotations

import json
import signal
import time
from collections.abc import AsyncIterator, Iterator

import pytest
import redis

from relier import ArgumentError, TaskFailed
from relier.embedded import EmbeddedServer
from relier.protocol import dead_letter
from relier.store import keys
from relier.task import PushOptions
from tests.conftest import FAST, StartWorker, pointed_at
from tests.polling import poll
from tests.taskapps import hazards, payments

APP = "tests.taskapps.hazards:app"


@pytest.fixture(autouse=True)
async def hazards_app(redis_url: str) -> AsyncIterator[None]:
    async with pointed_at(redis_url, hazards.app, payments.app):
        yield


def test_a_task_raising_cancelled_error_fails_and_the_worker_goes_on(
    start_worker: StartWorker, rclient: redis.Redis
) -> None:
    worker = start_worker(APP)
    with pytest.raises(TaskFailed) as caught:
        hazards.self_cancel.push().result(timeout=30)
    assert caught.value.exc_type == "CancelledError"
    assert hazards.echo.push("still here").result(timeout=30) == "still here"
    assert worker.process.poll() is None
    [entry] = [dead_letter.decode(raw) for raw in rclient.lrange(keys.dead_letters("default"),
                                                                   0, -1)]
    assert entry.reason == "exception"


def test_two_messages_sharing_a_task_id_are_each_settled(
    start_worker: StartWorker, rclient: redis.Redis
) -> None:
    # As when a Celery producer reuses a task_id, or a DLQ entry is replayed twice.
    batch = hazards.app.producer.prepare(hazards.fail, [(("twin",), {})],
                                         PushOptions(task_id="twin-id"))
    raw, _ = batch.messages[0]
    rclient.lpush(keys.queue_list("default"), raw, raw)
    start_worker(APP)
    entries = poll(lambda: rclient.llen(keys.dead_letters("default")) == 2 and
                   rclient.lrange(keys.dead_letters("default"), 0, -1), 30, "two DLQ entries")
    assert {dead_letter.decode(e).task_id for e in entries} == {"twin-id"}
    poll(lambda: not rclient.keys("relier:{default}:processing:*"), 15, "empty processing")


def test_one_idempotency_key_cannot_name_many_calls() -> None:
    with pytest.raises(ArgumentError, match="cannot name 3 different calls"):
        payments.refund.options(idempotency_key="k").push_many([(("a",), {}), (("b",), {}),
                                                                (("c",), {})])


def test_a_delayed_idempotent_call_keeps_its_record_until_after_it_is_due(
    rclient: redis.Redis,
) -> None:
    payments.receipt.options(countdown=30).push("later")  # idempotency_ttl=1
    record = keys.idempotency("payments.receipt",
                              payments.receipt.arguments.fingerprint(["later"], {}))
    assert rclient.ttl(record) >= 30


@pytest.fixture
def own_server() -> Iterator[EmbeddedServer]:
    """A server of its own: the test starves it of memory."""
    with EmbeddedServer() as server:
        yield server


def test_a_worker_rides_out_redis_refusing_writes(
    start_worker: StartWorker, own_server: EmbeddedServer
) -> None:
    client = redis.Redis.from_url(own_server.url)
    worker = start_worker(APP, url=own_server.url)
    used = int(client.info("memory")["used_memory"])
    client.config_set("maxmemory", used // 2)  # every write is refused: OOM
    worker.wait_for_line("maxmemory", timeout=30)
    client.config_set("maxmemory", 0)
    hazards.app.configure(redis_url=own_server.url)
    assert hazards.echo.push("after oom").result(timeout=30) == "after oom"
    assert worker.process.poll() is None
    client.close()


def test_an_idle_spell_does_not_read_as_a_slow_drain(
    start_worker: StartWorker, rclient: redis.Redis
) -> None:
    ten_minutes_ago = int(time.time() * 1000) - 600_000
    rclient.hset(keys.stats("default"), mapping={
        "rate": 100, "window_start_ms": ten_minutes_ago, "window_count": 0})
    start_worker(APP)
    for handle in hazards.echo.push_many([((str(i),), {}) for i in range(5)]):
        handle.result(timeout=30)
    stats = {k.decode(): float(v) for k, v in rclient.hgetall(keys.stats("default")).items()}
    assert stats["rate"] == 100  # not 5 messages / 600 s
    assert stats["window_start_ms"] > ten_minutes_ago + 590_000


def test_a_quarantined_idempotent_call_can_be_dispatched_again(
    start_worker: StartWorker, rclient: redis.Redis
) -> None:
    fast = {**FAST, "RELIER_MAX_RESURRECTIONS": "1"}
    start_worker(APP, env=fast)
    survivor = start_worker(APP, env=fast, queues="re-queue")  # never takes `default`
    first = hazards.crash_once_idempotent.push("o-1")
    survivor.wait_for_line("quarantined as poison", timeout=30)
    # That line is logged as the quarantine is prepared, just before its script runs.
    entries = poll(lambda: rclient.lrange(keys.dead_letters("default"), 0, -1), 30,
                   "the poison entry in the DLQ")
    [entry] = [json.loads(raw) for raw in entries]
    assert entry["reason"] == "poison"
    again = hazards.crash_once_idempotent.push("o-1")
    assert again.id != first.id


def test_a_task_that_ignores_cancellation_cannot_hang_shutdown(
    start_worker: StartWorker, rclient: redis.Redis
) -> None:
    worker = start_worker(APP, env={"RELIER_SHUTDOWN_GRACE": "0.5"})
    hazards.stubborn.push()
    poll(lambda: rclient.llen("test:stubborn"), 15, "the task to start")
    worker.signal(signal.SIGTERM)
    assert worker.wait(timeout=60) == 71
    assert "ignored their cancellation" in worker.output
    # Given back, not lost: it waits in its queue for the next worker.
    assert rclient.llen(keys.queue_list("default")) == 1
    assert not rclient.keys("relier:{default}:processing:*")


def test_a_signal_delivered_twice_at_once_is_one_stop_request(
    start_worker: StartWorker, rclient: redis.Redis
) -> None:
    worker = start_worker(APP)
    handle = hazards.steady.push(2.0)
    poll(lambda: rclient.llen("test:steady"), 15, "the task to start")
    worker.signal(signal.SIGTERM)  # as systemd sends it to every process of the group...
    worker.signal(signal.SIGTERM)  # ...and a supervisor forwards its own copy
    assert worker.wait(timeout=60) == 0
    assert handle.result(timeout=5) == "finished"  # the grace period was kept


def test_a_message_moved_by_a_fetch_whose_reply_was_lost_is_given_back(
    start_worker: StartWorker, rclient: redis.Redis
) -> None:
    worker = start_worker(APP, env={"RELIER_ORPHAN_CHECK_INTERVAL": "0.3"})
    worker_id = worker.wait_for_line("consuming").split("worker ", 1)[1].split()[0]
    # What a fetch whose reply never came back leaves: the message in this live worker's
    # processing list, unknown to the worker itself.
    batch = hazards.app.producer.prepare(hazards.echo, [(("orphan",), {})], PushOptions())
    raw, task_id = batch.messages[0]
    rclient.lpush(keys.processing("default", worker_id), raw)
    # A task running all along is accounted for, and never given back.
    steady = hazards.steady.push(2.0)

    worker.wait_for_line("held but never ran", timeout=30)
    assert hazards.echo.push("orphan").id != task_id  # not idempotent: a fresh call
    stored = poll(lambda: rclient.get(keys.result(task_id)), 30, "the orphan to run")
    assert json.loads(stored)["result"] == "orphan"
    assert steady.result(timeout=30) == "finished"
    assert rclient.llen("test:steady") == 1
