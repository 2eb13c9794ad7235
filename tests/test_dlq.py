"""The DLQ from the command line: list --json parses, replay runs the task again."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest
import redis

from relier import TaskFailed
from relier.protocol import results
from relier.store import keys
from tests.conftest import StartWorker
from tests.taskapps import basic

APP = "tests.taskapps.basic:app"


pytestmark = pytest.mark.usefixtures("basic_app")


def relier(redis_url: str, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "relier", *args, "--redis-url", redis_url],
                          capture_output=True, text=True, timeout=60, input=stdin)


def test_list_json_has_the_documented_fields(
    start_worker: StartWorker, redis_url: str
) -> None:
    start_worker(APP)
    failed = basic.fail.push("kaput")
    with pytest.raises(TaskFailed):
        failed.result(timeout=10)
    done = relier(redis_url, "dlq", "list", "--json")
    assert done.returncode == 0, done.stderr
    [entry] = json.loads(done.stdout)
    assert {"task_id", "task", "queue", "reason", "error", "traceback", "attempts",
            "resurrections", "worker", "failed_at", "message"} <= entry.keys()
    assert (entry["task_id"], entry["task"], entry["queue"], entry["reason"]) == (
        failed.id, "basic.fail", "default", "exception")
    assert entry["message"]["headers"]["id"] == failed.id
    assert json.loads(relier(redis_url, "dlq", "list", "--json", "--reason", "poison").stdout) == []
    shown = relier(redis_url, "dlq", "show", failed.id)
    assert "ValueError" in shown.stdout and "kaput" in shown.stdout


def test_replay_runs_the_original_message_again(
    start_worker: StartWorker, redis_url: str, rclient: redis.Redis
) -> None:
    failed = basic.fail.push("again")
    start_worker(APP)
    with pytest.raises(TaskFailed):
        failed.result(timeout=10)
    rclient.delete(keys.result(failed.id))
    done = relier(redis_url, "dlq", "replay", failed.id)
    assert done.returncode == 0, done.stderr
    assert "replayed 1 task(s)" in done.stdout
    # The worker runs it again (it fails again, as the task always does): a new result and
    # a new entry prove the second run.
    deadline = time.monotonic() + 10
    while rclient.get(keys.result(failed.id)) is None:
        assert time.monotonic() < deadline, "the replayed task did not run"
        time.sleep(0.02)
    assert results.decode(rclient.get(keys.result(failed.id))).status == "FAILURE"
    assert rclient.llen(keys.dead_letters("default")) == 1


def test_purge_asks_unless_yes(start_worker: StartWorker, redis_url: str,
                               rclient: redis.Redis) -> None:
    start_worker(APP)
    with pytest.raises(TaskFailed):
        basic.fail.push("x").result(timeout=10)
    refused = relier(redis_url, "dlq", "purge", stdin="n\n")
    assert refused.returncode == 1
    assert rclient.llen(keys.dead_letters("default")) == 1
    done = relier(redis_url, "dlq", "purge", "--yes")
    assert "purged 1 entry" in done.stdout
    assert rclient.llen(keys.dead_letters("default")) == 0
