"""Rolling deploys with real worker subprocesses: two releases of the same tasks
(tests/taskapps/deploy_v1.py and deploy_v2.py) sharing the queue ``default``.

- a payload newer than a worker's handler is deferred, never run nor dead-lettered, and
  runs once a worker with the new release is up; past ``defer_window`` it is
  dead-lettered as ``version_too_new``;
- an older payload is upgraded (a Celery-sent one counts as version 1); one that fits the
  new signature runs without an upgrader; one that does not is dead-lettered as
  ``payload_invalid`` naming the argument, and replays fine once the fix is deployed;
- an unknown task name is deferred, then dead-lettered as ``unknown_task``.
"""

from __future__ import annotations

import base64
import json
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import redis

from relier import TaskFailed
from relier.handle import TaskHandle
from relier.protocol import dead_letter
from relier.protocol.dead_letter import DeadLetter
from relier.store import keys
from tests.conftest import StartWorker, WorkerProcess
from tests.polling import poll
from tests.taskapps import deploy_v1, deploy_v2

V1 = "tests.taskapps.deploy_v1:app"
V2 = "tests.taskapps.deploy_v2:app"
V2_FIXED = "tests.taskapps.deploy_v2_fixed:app"
VECTORS = Path(__file__).parent / "vectors"
#: A short deferral window for the tests that wait it out (the default is 10 minutes).
SHORT_WINDOW = {"RELIER_DEFER_WINDOW": "3"}


@pytest.fixture(autouse=True)
def deploy_apps(redis_url: str) -> Iterator[None]:
    """Both releases' Apps push to this test's database (an old and a new producer)."""
    for app in (deploy_v1.app, deploy_v2.app):
        app.configure(redis_url=redis_url)
    yield
    for app in (deploy_v1.app, deploy_v2.app):
        app.close()


def runs(rclient: redis.Redis) -> list[str]:
    return [r.decode() for r in rclient.lrange(deploy_v1.RUNS, 0, -1)]


def dead_letters(rclient: redis.Redis) -> list[DeadLetter]:
    return [dead_letter.decode(e) for e in rclient.lrange(keys.dead_letters("default"), 0, -1)]


def deferrals_logged(worker: WorkerProcess, task_id: str) -> int:
    return sum(f"deferring {task_id}" in line for line in worker.output.splitlines())


def relier(redis_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "relier", *args, "--redis-url", redis_url],
                          capture_output=True, text=True, timeout=60)


def test_a_newer_payload_waits_for_a_worker_that_knows_it(
    start_worker: StartWorker, rclient: redis.Redis
) -> None:
    old = start_worker(V1)
    handle = deploy_v2.greet.push(deploy_v2.Person("Ada", "Lovelace"), deploy_v2.Greeting.HI)
    # The old worker defers it once, into the deferred set, where it waits for a worker
    # that can run it: never run, never dead-lettered, never taken back by the old one.
    poll(lambda: rclient.zcard(keys.deferred("default")) == 1, 30, "the deferral")
    assert deferrals_logged(old, handle.id) == 1
    assert "payload is version 2; this worker has version 1" in old.output
    assert runs(rclient) == []
    assert dead_letters(rclient) == []
    assert rclient.get(keys.result(handle.id)) is None
    # The new release rolls out: its worker takes it from the deferred set.
    start_worker(V2)
    assert handle.result(timeout=60) == "v2 hi Ada Lovelace"
    assert runs(rclient) == [f"v2 deploy.greet {handle.id}"]
    assert dead_letters(rclient) == []
    assert deferrals_logged(old, handle.id) == 1


def test_a_newer_payload_is_dead_lettered_after_the_window(
    start_worker: StartWorker, rclient: redis.Redis
) -> None:
    start_worker(V1, env=SHORT_WINDOW)
    handle = deploy_v2.greet.push(deploy_v2.Person("Ada", "Lovelace"))
    with pytest.raises(TaskFailed) as caught:
        handle.result(timeout=60)
    assert caught.value.exc_type == "PayloadError"
    [entry] = dead_letters(rclient)
    assert (entry.task_id, entry.reason) == (handle.id, "version_too_new")
    assert "version 2" in entry.error and "version 1" in entry.error
    headers = entry.message["headers"]
    assert headers["relier_deferrals"] >= 1
    assert entry.failed_at - headers["relier_first_deferred_at"] >= 3
    assert runs(rclient) == []


def test_an_older_payload_is_upgraded_and_runs(
    start_worker: StartWorker, rclient: redis.Redis
) -> None:
    start_worker(V2)
    positional = deploy_v1.greet.push("Ada Lovelace")
    by_keyword = deploy_v1.greet.push(name="Grace Hopper")
    assert positional.result(timeout=30) == "v2 hello Ada Lovelace"
    assert by_keyword.result(timeout=30) == "v2 hello Grace Hopper"
    assert sorted(runs(rclient)) == sorted(
        f"v2 deploy.greet {h.id}" for h in (positional, by_keyword))


def test_a_celery_sent_message_counts_as_version_1(
    start_worker: StartWorker, rclient: redis.Redis
) -> None:
    """A real Celery capture has no relier_version header: the v1→v2 upgrader runs."""
    envelope = json.loads((VECTORS / "a_send_task_default.json").read_bytes())
    assert not any(name.startswith("relier_") for name in envelope["headers"])
    task_id = str(uuid.uuid4())
    embed = {"callbacks": None, "errbacks": None, "chain": None, "chord": None}
    envelope["body"] = base64.b64encode(json.dumps([["Alan Turing"], {}, embed]).encode()).decode()
    envelope["headers"].update(task="deploy.greet", id=task_id, root_id=task_id)
    envelope["properties"].update(correlation_id=task_id,
                                  delivery_info={"exchange": "", "routing_key": "default"})
    start_worker(V2)
    rclient.lpush("default", json.dumps(envelope))
    assert TaskHandle(deploy_v2.app, task_id).result(timeout=30) == "v2 hello Alan Turing"


def test_an_older_payload_that_fits_runs_without_an_upgrader(start_worker: StartWorker) -> None:
    start_worker(V2)
    handle = deploy_v1.note.push("o-7")
    assert handle.result(timeout=30) == {"order": "o-7", "note": "none", "at": "never"}
    # And the new producer's typed call, for comparison.
    when = datetime(2031, 1, 2, tzinfo=UTC)
    assert deploy_v2.note.push("o-8", "gift", when).result(timeout=30) == {
        "order": "o-8", "note": "gift", "at": "2031-01-02T00:00:00+00:00"}


def test_an_incompatible_payload_is_dead_lettered_then_replayed_after_the_fix(
    start_worker: StartWorker, rclient: redis.Redis, redis_url: str
) -> None:
    broken = start_worker(V2)
    handle = deploy_v1.charge.push(500)
    with pytest.raises(TaskFailed) as caught:
        handle.result(timeout=30)
    assert caught.value.exc_type == "ArgumentError"
    [entry] = dead_letters(rclient)
    assert (entry.task_id, entry.task, entry.reason) == (handle.id, "deploy.charge",
                                                         "payload_invalid")
    assert "argument 'amount'" in entry.error
    assert "version 1 payload, with no upgrader" in entry.error
    assert runs(rclient) == []
    # The fix (an upgrader) is deployed: the broken release stops, the fixed one starts,
    # and the dead-lettered payload is replayed.
    broken.signal(signal.SIGTERM)
    assert broken.wait() == 0
    start_worker(V2_FIXED)
    rclient.delete(keys.result(handle.id))
    done = relier(redis_url, "dlq", "replay", "--reason", "payload_invalid")
    assert done.returncode == 0, done.stderr
    assert handle.id in done.stdout
    # A new handle: the first one keeps the failure it already read.
    assert TaskHandle(deploy_v1.app, handle.id).result(timeout=30) == "500 EUR"
    assert runs(rclient) == [f"v2 deploy.charge {handle.id}"]
    assert dead_letters(rclient) == []


def test_an_unknown_task_is_deferred_then_dead_lettered(
    start_worker: StartWorker, rclient: redis.Redis
) -> None:
    old = start_worker(V1, env=SHORT_WINDOW)
    handle = deploy_v2.launch.push({"rocket": "Ariane", "at": datetime(2031, 1, 1, tzinfo=UTC)})
    old.wait_for_line(f"deferring {handle.id}")
    with pytest.raises(TaskFailed) as caught:
        handle.result(timeout=60)
    assert (caught.value.exc_type, caught.value.exc_message) == ("NotRegistered",
                                                                 ["deploy.launch"])
    [entry] = dead_letters(rclient)
    assert (entry.task_id, entry.reason) == (handle.id, "unknown_task")
    # It was deferred (the message carries the count) for the whole window first.
    headers = entry.message["headers"]
    assert headers["relier_deferrals"] >= 1
    assert entry.failed_at - headers["relier_first_deferred_at"] >= 3
    assert runs(rclient) == []
