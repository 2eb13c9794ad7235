"""Hostile bytes in Redis never crash a worker: a 10,000-deep message is dead-lettered by
the worker that takes it and quarantined by the one that recovers it from a dead worker;
garbage in the registry or a running table leaves the resurrector and `inspect` working;
and a dead letter is filed under the queue the worker took it from.
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import time
import uuid
from typing import Any

import pytest
import redis

from relier.errors import PayloadError
from relier.protocol import dead_letter, hostile, registry
from relier.protocol import message as wire
from relier.store import keys
from relier.store import registry as registry_store
from tests.conftest import FAST, StartWorker
from tests.polling import poll
from tests.taskapps import basic

APP = "tests.taskapps.basic:app"
DEPTH = 10_000

pytestmark = pytest.mark.usefixtures("basic_app")


def deep(depth: int = DEPTH) -> str:
    return "[" * depth + "]" * depth


def good_envelope(task_id: str, queue: str = "default") -> dict[str, Any]:
    return json.loads(wire.encode(wire.build("basic.add", [1, 2], {}, queue=queue,
                                             task_id=task_id)))


def deep_body(task_id: str) -> bytes:
    envelope = good_envelope(task_id)
    envelope["body"] = base64.b64encode(f"[{deep()}, {{}}, {{}}]".encode()).decode()
    return json.dumps(envelope).encode()


def deep_headers(task_id: str) -> bytes:
    envelope = good_envelope(task_id)
    envelope["headers"]["lang"] = "DEEP"
    return json.dumps(envelope).replace('"DEEP"', deep(), 1).encode()


def deep_envelope(task_id: str) -> bytes:
    return deep().encode()


def deep_object(task_id: str) -> bytes:
    return ('{"x":' * DEPTH + "1" + "}" * DEPTH).encode()


SHAPES = {"body": deep_body, "headers": deep_headers, "envelope": deep_envelope,
          "object": deep_object}


def relier_cli(redis_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "relier", *args, "--redis-url", redis_url],
                          capture_output=True, text=True, timeout=60)


def dlq_json(redis_url: str) -> list[dict[str, Any]]:
    done = relier_cli(redis_url, "dlq", "list", "--json")
    assert done.returncode == 0, done.stderr
    entries: list[dict[str, Any]] = json.loads(done.stdout)
    return entries


# -- the guarded decode ------------------------------------------------------------------


@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_decode_refuses_deep_nesting_with_a_payload_error(shape: str) -> None:
    # A whole envelope that is an array is refused at its first byte, unread.
    expected = "Expected `object`" if shape == "envelope" else "nests too deep"
    with pytest.raises(PayloadError, match=expected) as caught:
        wire.decode(SHAPES[shape]("t-1"))
    assert caught.value.reason == "payload_invalid"
    # Only the body was deep: the headers still name the task and its id.
    peeked = wire.peek(SHAPES[shape]("t-1"))
    assert (peeked.id if peeked else None) == ("t-1" if shape == "body" else None)


def test_nesting_scan_ignores_brackets_inside_strings() -> None:
    in_strings = json.dumps({"a": "[" * 500, "b": '\\"[[[' * 100}).encode()
    assert not hostile.nesting_exceeds(in_strings)
    assert hostile.nesting_exceeds(b'["\\\\"' + b"[" * 300 + b"]" * 300 + b"]")
    legit = json.dumps([[[1, [2]]]] * 1000).encode()  # many brackets, shallow
    assert not hostile.nesting_exceeds(legit)
    assert wire.decode_json(legit)[0] == [[1, [2]]]


@pytest.mark.parametrize("raw", [b"\xff\xfe", b'{"task_id": 1}', deep().encode(),
                                 b'{"status": "SUCCESS", "task_id": "\xc3\x28"}'])
def test_every_reader_turns_garbage_into_a_payload_error(raw: bytes) -> None:
    from relier.protocol import results

    for decode in (dead_letter.decode, registry.decode, results.decode):
        with pytest.raises(PayloadError):
            decode(raw)
    assert registry.decode_running(raw) == []


def test_a_dlq_entry_keeps_invalid_utf8_and_deep_json_as_base64() -> None:
    for raw in (b'{"headers": {"task": "caf\xe9"}}', deep().encode()):
        envelope, exact = dead_letter.original_message(raw)
        entry = dead_letter.DeadLetter(task_id=None, task=None, queue="q", reason="x",
                                       error="", failed_at=0, message=envelope,
                                       message_raw=exact)
        again = dead_letter.decode(dead_letter.encode(entry))
        assert dead_letter.replay_bytes(again) == raw


# -- real workers ------------------------------------------------------------------------


def test_a_worker_fed_10000_deep_messages_keeps_its_pid(
    start_worker: StartWorker, rclient: redis.Redis, redis_url: str
) -> None:
    worker = start_worker(APP)
    ids = {shape: str(uuid.uuid4()) for shape in SHAPES}
    pushed = {shape: make(ids[shape]) for shape, make in SHAPES.items()}
    for raw in pushed.values():
        rclient.lpush("default", raw)
    # A good task behind them runs on the same process.
    assert basic.add.push(2, 3).result(timeout=30) == 5
    assert worker.process.poll() is None, worker.output
    assert sum("consuming" in line for line in worker.output.splitlines()) == 1
    entries = poll(lambda: (found := dlq_json(redis_url)) and len(found) == 4 and found,
                   30, "four DLQ entries")
    assert {e["reason"] for e in entries} == {"payload_invalid"}
    assert all(e["queue"] == "default" for e in entries)
    by_id = {e["task_id"]: e for e in entries}
    assert sum("nests too deep" in e["error"] for e in entries) == 3  # but the array
    assert by_id[ids["body"]]["task"] == "basic.add"  # its headers were readable
    # The deep ones are kept byte for byte in base64; the readable envelope as JSON.
    assert {base64.b64decode(e["message_raw"]) for e in entries if e["message_raw"]} == {
        pushed["headers"], pushed["envelope"], pushed["object"]}
    assert by_id[ids["body"]]["message"]["headers"]["id"] == ids["body"]


def plant_dead_worker(rclient: redis.Redis, held: list[bytes], queue: str = "default") -> str:
    """A registry entry and a processing list for a worker with no heartbeat key."""
    dead_id = f"ghost-{uuid.uuid4().hex[:8]}"
    now = time.time() - 60
    info = registry.WorkerInfo(id=dead_id, host="gone", pid=1, queues=[queue], concurrency=1,
                               started_at=now, last_heartbeat=now)
    rclient.hset(keys.WORKERS, dead_id, registry.encode(info))
    rclient.lpush(keys.processing(queue, dead_id), *held)
    return dead_id


def test_phoenix_quarantines_a_deep_message_it_cannot_decode(
    start_worker: StartWorker, rclient: redis.Redis, redis_url: str
) -> None:
    ids = {shape: str(uuid.uuid4()) for shape in SHAPES}
    dead_id = plant_dead_worker(rclient, [make(ids[s]) for s, make in SHAPES.items()])
    # Garbage next to it in the registry must not stop the sweep either.
    rclient.hset(keys.WORKERS, "garbage", deep())
    worker = start_worker(APP, env=FAST)
    poll(lambda: rclient.llen(keys.processing("default", dead_id)) == 0, 30,
         "the dead worker's list to be recovered")
    entries = poll(lambda: (found := dlq_json(redis_url)) and len(found) == 4 and found,
                   30, "four DLQ entries")
    assert {e["reason"] for e in entries} == {"payload_invalid"}
    assert {e["worker"] for e in entries} == {dead_id}
    assert ids["body"] in {e["task_id"] for e in entries}
    # Quarantined, not handed on: nothing went to re-queue, and the worker lives on.
    assert rclient.llen(keys.queue_list(keys.REQUEUE_QUEUE)) == 0
    assert basic.add.push(1, 1).result(timeout=30) == 2
    assert worker.process.poll() is None, worker.output
    assert "cannot be decoded" in worker.output


def test_phoenix_quarantines_what_the_first_worker_died_holding(
    start_worker: StartWorker, rclient: redis.Redis, redis_url: str
) -> None:
    """kill -9 of a worker while the deep message sits in its processing list: it is
    held behind a long task on a one-slot worker, then planted there as a fetch would."""
    first = start_worker(APP, "--concurrency", "1", env=FAST)
    basic.sleep.push(60)
    [info] = poll(lambda: registry_store.entries_sync(rclient).workers, 10, "registry")
    poll(lambda: rclient.llen(keys.processing("default", info.id)) == 1, 10, "the long task")
    task_id = str(uuid.uuid4())
    rclient.lpush(keys.processing("default", info.id), deep_body(task_id))
    first.kill()
    second = start_worker(APP, env=FAST)
    [entry] = poll(lambda: [e for e in dlq_json(redis_url) if e["task_id"] == task_id], 30,
                   "the deep message in the DLQ")
    assert (entry["reason"], entry["worker"], entry["queue"]) == (
        "payload_invalid", info.id, "default")
    assert second.process.poll() is None, second.output
    assert basic.add.push(4, 4).result(timeout=30) == 8


def test_inspect_survives_garbage_in_the_registry_and_running_tables(
    start_worker: StartWorker, rclient: redis.Redis, redis_url: str
) -> None:
    worker = start_worker(APP, env=FAST)
    rclient.hset(keys.WORKERS, "garbage", b"\xff" + deep().encode())
    [info] = poll(lambda: registry_store.entries_sync(rclient).workers,
                  10, "the worker's entry")
    rclient.set(keys.running("garbage"), deep())
    done = relier_cli(redis_url, "inspect", "--json")
    assert done.returncode == 0, done.stderr
    assert [w["id"] for w in json.loads(done.stdout)["workers"]] == [info.id]
    assert worker.process.poll() is None


# -- where dead letters are filed -----------------------------------------------------------


@pytest.mark.parametrize("delivery_info", [{"exchange": "", "routing_key": "elsewhere"}, None])
def test_a_dead_letter_is_filed_under_the_queue_it_was_taken_from(
    start_worker: StartWorker, rclient: redis.Redis, redis_url: str,
    delivery_info: dict[str, str] | None,
) -> None:
    start_worker(APP, queues="side")
    task_id = str(uuid.uuid4())
    envelope = good_envelope(task_id)
    envelope["headers"]["task"] = "basic.fail"
    envelope["body"] = base64.b64encode(json.dumps([["no"], {}, {}]).encode()).decode()
    if delivery_info is None:
        del envelope["properties"]["delivery_info"]
    else:
        envelope["properties"]["delivery_info"] = delivery_info
    rclient.lpush("side", json.dumps(envelope))
    [entry] = poll(lambda: dlq_json(redis_url), 30, "the entry")
    assert (entry["task_id"], entry["queue"], entry["reason"]) == (task_id, "side", "exception")
    assert rclient.llen(keys.dead_letters("side")) == 1
    assert rclient.keys("relier:{}*") == [] and rclient.llen(keys.dead_letters("elsewhere")) == 0
    listed = relier_cli(redis_url, "queues", "--json")
    assert {"name": "side", "dlq": 1}.items() <= next(
        q for q in json.loads(listed.stdout) if q["name"] == "side").items()


def test_a_poison_message_is_filed_under_its_queue_not_its_routing_key(
    start_worker: StartWorker, rclient: redis.Redis, redis_url: str
) -> None:
    task_id = str(uuid.uuid4())
    envelope = good_envelope(task_id, queue="elsewhere")
    # One more death with nothing else held is too many (poison needs lone deaths).
    envelope["headers"][wire.RESURRECTIONS_HEADER] = 99
    envelope["headers"][wire.LONE_DEATHS_HEADER] = 99
    plant_dead_worker(rclient, [json.dumps(envelope).encode()], queue="side")
    start_worker(APP, queues="side", env=FAST)
    [entry] = poll(lambda: dlq_json(redis_url), 30, "the poison entry")
    assert (entry["task_id"], entry["queue"], entry["reason"]) == (task_id, "side", "poison")


def test_a_header_no_check_foresaw_is_dead_lettered(
    start_worker: StartWorker, rclient: redis.Redis, redis_url: str
) -> None:
    """A timelimit of 10**400 is an OverflowError when it becomes a float."""
    worker = start_worker(APP)
    task_id = str(uuid.uuid4())
    envelope = good_envelope(task_id)
    envelope["headers"]["timelimit"] = ["HUGE", 1]
    text = json.dumps(envelope).replace('"HUGE"', "1" + "0" * 400, 1)
    rclient.lpush("default", text)
    assert basic.add.push(1, 2).result(timeout=30) == 3
    [entry] = poll(lambda: dlq_json(redis_url), 30, "the entry")
    assert (entry["task_id"], entry["reason"]) == (task_id, "payload_invalid")
    assert "OverflowError" in entry["error"]
    assert worker.process.poll() is None
