"""Idempotent dispatch: a call runs once, and every dispatch of it gets the first run's
result. Real worker subprocesses, real producer processes, a real kill -9."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import redis

from relier import TaskFailed
from relier.store import keys
from relier.task import PushOptions
from tests.conftest import FAST, ROOT, StartWorker
from tests.polling import poll
from tests.taskapps import payments

APP = "tests.taskapps.payments:app"
RESULT_TIMEOUT = 30.0

#: One producer process: waits for the starting gun, then fires 10 concurrent apush
#: calls of the same call and prints every (id, result) pair as JSON.
PRODUCER = """
import asyncio, json, sys
import redis
from tests.taskapps import payments

url, gun = sys.argv[1], sys.argv[2]
payments.app.configure(redis_url=url)

async def main():
    redis.Redis.from_url(url).blpop([gun], timeout=60)
    handles = await asyncio.gather(*(payments.charge.apush("cus_1", 500) for _ in range(10)))
    values = await asyncio.gather(*(h.aresult(timeout=60) for h in handles))
    print(json.dumps([[h.id, v] for h, v in zip(handles, values)]))
    await payments.app.aclose()

asyncio.run(main())
"""

pytestmark = pytest.mark.usefixtures("payments_app")


def runs(client: redis.Redis, name: str) -> list[list[str]]:
    return [v.decode().split() for v in client.lrange(f"test:runs:{name}", 0, -1)]


def waiting(client: redis.Redis, queue: str = "default") -> int:
    return sum(int(client.llen(name)) for name in keys.queue_lists(queue))


def test_fifty_concurrent_dispatches_from_five_processes_run_once(
    start_worker: StartWorker, rclient: redis.Redis, redis_url: str
) -> None:
    start_worker(APP)
    producers = [
        subprocess.Popen([sys.executable, "-c", PRODUCER, redis_url, f"test:gun:{i}"],
                         cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for i in range(5)
    ]
    for i in range(5):  # fire all five at once
        rclient.rpush(f"test:gun:{i}", "go")
    outputs = [p.communicate(timeout=120) for p in producers]
    assert all(p.returncode == 0 for p in producers), [err for _, err in outputs]
    pairs = [pair for out, _ in outputs for pair in json.loads(out)]

    assert len(pairs) == 50
    assert len({task_id for task_id, _ in pairs}) == 1
    assert len({json.dumps(value, sort_keys=True) for _, value in pairs}) == 1
    assert len(runs(rclient, "charge")) == 1
    first_id, first_value = pairs[0]
    assert first_value["charged_by"] == first_id

    # Afterwards a sync push returns the stored result at once, with nothing enqueued.
    hits_before = int(rclient.hget(keys.stats("default"), "idempotent_hits") or 0)
    handle = payments.charge.push("cus_1", 500)
    assert handle.id == first_id
    assert handle.result(timeout=0) == first_value
    assert waiting(rclient) == 0
    assert len(runs(rclient, "charge")) == 1
    assert int(rclient.hget(keys.stats("default"), "idempotent_hits") or 0) == hits_before + 1


def test_argument_spellings_are_one_call(start_worker: StartWorker, rclient: redis.Redis) -> None:
    spellings = [
        payments.charge.push("cus_2", 700),
        payments.charge.push("cus_2", amount_cents=700),
        payments.charge.push(customer="cus_2", amount_cents=700),
        payments.charge.push(amount_cents=700, customer="cus_2", currency="eur"),
    ]
    assert len({h.id for h in spellings}) == 1
    assert waiting(rclient) == 1
    other = payments.charge.push("cus_2", 700, "usd")
    assert other.id != spellings[0].id

    start_worker(APP)
    assert {h.result(timeout=RESULT_TIMEOUT)["amount"] for h in spellings} == {700}
    other.result(timeout=RESULT_TIMEOUT)
    assert len(runs(rclient, "charge")) == 2


def test_kill_9_mid_run_reruns_once_then_dispatches_get_the_result(
    start_worker: StartWorker, rclient: redis.Redis
) -> None:
    victim = start_worker(APP, env=FAST)
    handle = payments.settle.push("batch-9", 60.0)
    poll(lambda: runs(rclient, "settle"), 15, "the first run to start")
    # While it runs, a second dispatch is refused and shares the first one's id.
    assert payments.settle.push("batch-9", 60.0).id == handle.id
    start_worker(APP, env=FAST)
    victim.process.kill()

    assert handle.result(timeout=RESULT_TIMEOUT) == "settled batch-9"
    first, second = runs(rclient, "settle")
    assert first[0] == second[0] == handle.id
    assert (first[2], second[2]) == ("0", "1")  # the re-run is the resurrected delivery
    later = payments.settle.push("batch-9", 60.0)
    assert later.id == handle.id
    assert later.result(timeout=0) == "settled batch-9"
    assert len(runs(rclient, "settle")) == 2


def test_the_call_runs_again_after_its_idempotency_ttl(
    start_worker: StartWorker, rclient: redis.Redis
) -> None:
    start_worker(APP)
    first = payments.receipt.push("order-5")
    record = keys.idempotency("payments.receipt", _fingerprint("order-5"))
    poll(lambda: rclient.hget(record, "state") == b"succeeded", 15, "the first run")
    duplicate = payments.receipt.push("order-5")
    assert duplicate.id == first.id
    assert duplicate.result(timeout=0) is None  # ignore_result: nothing kept, still done
    assert not rclient.exists(keys.result(first.id))

    poll(lambda: not rclient.exists(record), 15, "the 1 s record to expire")
    again = payments.receipt.push("order-5")
    assert again.id != first.id
    poll(lambda: len(runs(rclient, "receipt")) == 2, 15, "the second run")


def test_a_failed_run_does_not_block_the_next_dispatch(
    start_worker: StartWorker, rclient: redis.Redis
) -> None:
    start_worker(APP)
    first = payments.flaky.push("order-8")
    with pytest.raises(TaskFailed, match="gateway timeout"):
        first.result(timeout=RESULT_TIMEOUT)
    second = payments.flaky.push("order-8")
    assert second.id != first.id
    assert second.result(timeout=RESULT_TIMEOUT) == "paid order-8"
    assert payments.flaky.push("order-8").id == second.id
    assert len(runs(rclient, "flaky")) == 2


def test_a_per_call_key_makes_any_task_idempotent_scoped_by_task(
    start_worker: StartWorker, rclient: redis.Redis
) -> None:
    start_worker(APP)
    once = payments.refund.options(idempotency_key="order-17")
    first, second = once.push("o17"), once.push("o17")
    assert first.id == second.id
    assert second.result(timeout=RESULT_TIMEOUT) == "refunded o17"
    # The same key on another task is another call.
    charge = payments.charge.options(idempotency_key="order-17").push("cus_9", 100)
    assert charge.id != first.id
    assert charge.result(timeout=RESULT_TIMEOUT)["key"] == "order-17"
    assert len(runs(rclient, "refund")) == 1


def test_a_redelivered_message_of_a_succeeded_call_is_acked_without_running(
    start_worker: StartWorker, rclient: redis.Redis
) -> None:
    worker = start_worker(APP)
    first = payments.charge.push("cus_3", 300)
    value = first.result(timeout=RESULT_TIMEOUT)
    # The same call's message arriving again (as after a resurrection, or from a
    # producer that bypassed the enqueue script), under a new id.
    batch = payments.app.producer.prepare(payments.charge, [(("cus_3", 300), {})], PushOptions())
    raw, redelivered_id = batch.messages[0]
    rclient.lpush(keys.queue_list("default"), raw)

    worker.wait_for_line("already succeeded")
    assert payments.charge.push("cus_3", 300).result(timeout=0) == value
    stored = poll(lambda: rclient.get(keys.result(redelivered_id)), 15, "the redelivery's ack")
    assert json.loads(stored)["result"] == value
    assert json.loads(stored)["task_id"] == redelivered_id
    assert len(runs(rclient, "charge")) == 1


def test_the_call_fingerprint_ignores_spelling_but_not_values() -> None:
    spec = payments.charge.arguments
    same = {
        spec.fingerprint(["c", 1], {}),
        spec.fingerprint(["c"], {"amount_cents": 1}),
        spec.fingerprint([], {"amount_cents": 1, "customer": "c"}),
        spec.fingerprint(["c", 1, "eur"], {}),
    }
    assert len(same) == 1
    assert spec.fingerprint(["c", 2], {}) not in same


def _fingerprint(order: str) -> str:
    return payments.receipt.arguments.fingerprint([order], {})
