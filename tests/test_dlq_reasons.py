"""The DLQ's counts by reason follow every way entries come and go, and heal themselves."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest
import redis

from relier import TaskFailed
from relier.protocol import dead_letter
from relier.store import keys
from tests.conftest import ROOT, StartWorker
from tests.polling import poll
from tests.taskapps import observe

APP = "tests.taskapps.observe:app"

pytestmark = pytest.mark.usefixtures("observe_app")


def relier(redis_url: str, *args: str) -> str:
    done = subprocess.run([sys.executable, "-m", "relier", *args, "--redis-url", redis_url],
                          capture_output=True, text=True, timeout=60, cwd=ROOT,
                          env=dict(os.environ))
    assert done.returncode == 0, done.stderr
    return done.stdout


def reasons(redis_url: str) -> dict[str, int]:
    [default] = [q for q in json.loads(relier(redis_url, "queues", "--json"))
                 if q["name"] == "default"]
    assert default["dlq"] == sum(default["dlq_reasons"].values())
    return dict(default["dlq_reasons"])


def test_counts_follow_failures_replay_purge_and_old_entries(
    start_worker: StartWorker, rclient: redis.Redis, redis_url: str
) -> None:
    start_worker(APP)
    failed = [observe.boom.push(f"n{i}") for i in range(3)]
    for handle in failed:
        with pytest.raises(TaskFailed):
            handle.result(timeout=10)
    assert reasons(redis_url) == {"exception": 3}
    assert rclient.hgetall(keys.dlq_reasons("default")) == {b"exception": b"3"}

    relier(redis_url, "dlq", "replay", failed[0].id)  # fails again: back in the DLQ
    poll(lambda: rclient.llen(keys.dead_letters("default")) == 3, 10, "the replay to fail")
    assert reasons(redis_url) == {"exception": 3}
    relier(redis_url, "dlq", "purge", "--yes", "--task", "observe.boom")
    assert reasons(redis_url) == {}
    assert rclient.hget(keys.dlq_reasons("default"), "exception") == b"0"

    # Entries the counts never saw (written by an older worker) are recounted once.
    for reason in ("not_json", "not_json", "poison"):
        entry = dead_letter.DeadLetter(task_id=None, task=None, queue="default",
                                       reason=reason, error="old", failed_at=time.time(),
                                       message={"body": '"reason":"exception"'})
        rclient.lpush(keys.dead_letters("default"), dead_letter.encode(entry))
    assert reasons(redis_url) == {"not_json": 2, "poison": 1}
    assert rclient.hgetall(keys.dlq_reasons("default")) == {b"not_json": b"2", b"poison": b"1"}
