"""DLQ entries always read back, every DLQ command copes with a corrupt one, and a replay
gives the task fresh counters and says how many times it was replayed."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import uuid
from typing import Any

import pytest
import redis

from relier import TaskFailed
from relier.protocol import dead_letter
from relier.protocol import message as wire
from relier.store import keys
from tests.conftest import StartWorker
from tests.polling import poll
from tests.taskapps import timeouts

APP = "tests.taskapps.timeouts:app"

pytestmark = pytest.mark.usefixtures("timeouts_app")


def relier(redis_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "relier", *args, "--redis-url", redis_url],
                          capture_output=True, text=True, timeout=60)


def listed(redis_url: str, *args: str) -> list[dict[str, Any]]:
    done = relier(redis_url, "dlq", "list", "--json", *args)
    assert done.returncode == 0, done.stderr
    entries: list[dict[str, Any]] = json.loads(done.stdout)
    return entries


def started(client: redis.Redis, marker: str) -> list[int]:
    """The attempt number of every run under the marker, in order."""
    return [int(raw.split()[1]) for raw in client.lrange(timeouts.started_key(marker), 0, -1)]


def invalid_utf8_message(task_id: str) -> bytes:
    """JSON whose headers hold a string that is not UTF-8 (latin-1 bytes)."""
    message = wire.build("timeouts.always_fails", ["x"], {}, queue="default", task_id=task_id)
    message.headers["note"] = "CAFE"
    return wire.encode(message).replace(b'"CAFE"', b'"caf\xe9"')


def test_a_message_that_is_not_utf8_is_kept_in_a_form_that_reads_back(
    start_worker: StartWorker, rclient: redis.Redis, redis_url: str
) -> None:
    start_worker(APP)
    task_id = str(uuid.uuid4())
    raw = invalid_utf8_message(task_id)
    rclient.lpush("default", raw)
    [entry] = poll(lambda: listed(redis_url), 30, "the entry")
    assert entry["reason"] == "not_json"
    assert (entry["task_id"], entry["queue"]) == (task_id, "default")
    assert base64.b64decode(entry["message_raw"]) == raw  # the exact bytes, for replay
    shown = relier(redis_url, "dlq", "show", task_id)
    assert shown.returncode == 0 and "not_json" in shown.stdout, shown.stderr
    replayed = relier(redis_url, "dlq", "replay", task_id)
    assert replayed.returncode == 0 and "replayed 1 task(s)" in replayed.stdout
    # Byte for byte back: the worker dead-letters it again, the same way.
    [again] = poll(lambda: listed(redis_url), 30, "the entry again")
    assert base64.b64decode(again["message_raw"]) == raw


CORRUPT = [
    b"\xff\xfe not json",
    # An entry an older worker wrote around a message that was not UTF-8.
    b'{"task_id":"old-1","task":"t","queue":"default","reason":"not_json","error":"",'
    b'"failed_at":1.0,"message":{"headers":{"x":"caf\xe9"}}}',
    b"[" * 5000 + b"]" * 5000,
]


def plant(rclient: redis.Redis) -> None:
    for raw in CORRUPT:
        rclient.lpush(keys.dead_letters("default"), raw)
        rclient.hincrby(keys.dlq_reasons("default"), dead_letter.counted_reason(raw), 1)
    rclient.sadd(keys.KNOWN_QUEUES, "default")


def test_every_dlq_command_shows_a_corrupt_entry_as_unreadable(
    start_worker: StartWorker, rclient: redis.Redis, redis_url: str
) -> None:
    start_worker(APP)
    good = timeouts.picky.push("picky")  # not retried: one run, then the DLQ
    with pytest.raises(TaskFailed):
        good.result(timeout=30)
    plant(rclient)

    entries = listed(redis_url)
    assert len(entries) == 4
    unreadable = [e for e in entries if e["reason"] == "unreadable"]
    assert len(unreadable) == 3
    assert all(e["error"].startswith("this DLQ entry cannot be read") for e in unreadable)
    assert {base64.b64decode(e["message_raw"]) for e in unreadable} == set(CORRUPT)
    assert next(e for e in entries if e["reason"] == "exception")["task_id"] == good.id
    assert [e["task_id"] for e in listed(redis_url, "--reason", "unreadable")].count("old-1") == 1

    table = relier(redis_url, "dlq", "list")
    assert table.returncode == 0 and "unreadable" in table.stdout, table.stderr
    shown = relier(redis_url, "dlq", "show", "old-1")
    assert shown.returncode == 0 and "unreadable" in shown.stdout, shown.stderr

    replayed = relier(redis_url, "dlq", "replay", "--all")
    assert replayed.returncode == 1
    assert "replayed 1 task(s)" in replayed.stdout and good.id in replayed.stdout
    assert replayed.stderr.count("not replayed:") == 3
    poll(lambda: started(rclient, "picky") == [1, 1], 30, "the replayed task to run")

    poll(lambda: len(listed(redis_url)) == 4, 30, "the replayed task back in the DLQ")
    purged = relier(redis_url, "dlq", "purge", "--reason", "unreadable", "--yes")
    assert purged.returncode == 0 and "purged 3 entries" in purged.stdout, purged.stderr
    assert [e["reason"] for e in listed(redis_url)] == ["exception"]
    # The count-by-reason hash agrees with the list again.
    counts = {k.decode(): int(v) for k, v in rclient.hgetall(keys.dlq_reasons("default")).items()}
    assert {k: v for k, v in counts.items() if v} == {"exception": 1}


def test_replay_gives_fresh_counters_and_counts_replays(
    start_worker: StartWorker, rclient: redis.Redis, redis_url: str
) -> None:
    start_worker(APP)
    handle = timeouts.always_fails.push("doomed")  # retries=3: four runs, then the DLQ
    with pytest.raises(TaskFailed):
        handle.result(timeout=60)
    assert started(rclient, "doomed") == [1, 2, 3, 4]
    [entry] = listed(redis_url)
    assert (entry["attempts"], entry["replays"]) == (4, 0)

    for replay in (1, 2):
        done = relier(redis_url, "dlq", "replay", handle.id)
        assert done.returncode == 0 and "replayed 1 task(s)" in done.stdout, done.stderr
        # Every retry again, from attempt 1: not one run at attempt 4 straight back.
        poll(lambda n=replay: len(started(rclient, "doomed")) == 4 * (n + 1), 60,
             f"replay {replay} to run four times")
        [entry] = poll(lambda: listed(redis_url), 30, "the entry again")
        assert started(rclient, "doomed")[-4:] == [1, 2, 3, 4]
        assert (entry["attempts"], entry["replays"]) == (4, replay)
        assert entry["message"]["headers"][wire.REPLAYS_HEADER] == replay
    shown = relier(redis_url, "dlq", "show", handle.id)
    assert "replays: 2" in shown.stdout


def test_fresh_message_resets_relier_counters() -> None:
    from relier.dlq import fresh_message

    message = wire.build("t", [], {}, queue="q")
    message.retries = 5
    message.headers.update({wire.RESURRECTIONS_HEADER: 2, wire.REPLAYS_HEADER: 3,
                            "relier_deferrals": 4, wire.FIRST_DEFERRED_HEADER: 1.0})
    envelope, _ = dead_letter.original_message(wire.encode(message))
    entry = dead_letter.decode(dead_letter.encode(dead_letter.DeadLetter(
        task_id=message.id, task="t", queue="q", reason="exception", error="",
        failed_at=0, message=envelope)))
    again = wire.decode(fresh_message(entry))
    assert (again.retries, again.resurrections, again.replays) == (0, 0, 4)
    assert "relier_deferrals" not in again.headers
    assert wire.FIRST_DEFERRED_HEADER not in again.headers
