"""Property: whatever malformed bytes land on a queue, one real worker process keeps
running (same pid), runs every good task interleaved with them, and files every
malformed message in the DLQ that `relier dlq list --json` shows, with a reason.

The shapes are in tests/malformed.py. This CI version is bounded (``FUZZ_EXAMPLES``,
default 100 batches); `python -m benchmarks.fuzz` is the long one.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

import pytest
import redis
from hypothesis import HealthCheck, given, settings

from relier.handle import TaskHandle
from relier.store import keys
from tests.conftest import StartWorker
from tests.malformed import QUEUE, WORKER_ENV, Case, batches
from tests.polling import poll
from tests.taskapps import basic

APP = "tests.taskapps.basic:app"
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "100"))
REASONS = {"payload_invalid", "not_json", "unknown_task"}

pytestmark = pytest.mark.usefixtures("basic_app")


def dlq_list(redis_url: str) -> list[dict[str, Any]]:
    done = subprocess.run([sys.executable, "-m", "relier", "dlq", "list", "--json",
                           "--limit", "0", "--redis-url", redis_url],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    entries: list[dict[str, Any]] = json.loads(done.stdout)
    return entries


def test_malformed_messages_never_crash_the_worker(
    start_worker: StartWorker, rclient: redis.Redis, redis_url: str
) -> None:
    worker = start_worker(APP, env=WORKER_ENV)
    pid = worker.pid
    pushed_bad: list[Case] = []

    @settings(max_examples=EXAMPLES, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(batch=batches)
    def one_batch(batch: list[Case]) -> None:
        for case in batch:
            rclient.lpush(QUEUE, case.raw)
        bad = [c for c in batch if c.expected is None]
        pushed_bad.extend(bad)
        for case in batch:
            if case.expected is not None:
                assert case.task_id is not None
                value = TaskHandle(basic.app, case.task_id).result(timeout=60)
                assert value == case.expected, case.shape
        poll(lambda: rclient.llen(keys.dead_letters(QUEUE)) >= len(pushed_bad), 60,
             f"{[c.shape for c in bad]} to reach the DLQ")
        assert worker.process.poll() is None, worker.output[-5000:]

    one_batch()

    assert worker.process.poll() is None and worker.pid == pid
    assert sum("consuming" in line for line in worker.output.splitlines()) == 1
    entries = dlq_list(redis_url)
    assert len(entries) == len(pushed_bad)
    assert all(e["reason"] in REASONS and e["error"] and e["queue"] == QUEUE for e in entries)
    named = {e["task_id"] for e in entries}
    missing = [c.shape for c in pushed_bad if c.task_id and c.task_id not in named]
    assert missing == []
    assert rclient.llen(QUEUE) == 0 and rclient.zcard(keys.delayed(QUEUE)) == 0
    shapes = sorted({c.shape for c in pushed_bad})
    print(f"{len(pushed_bad)} malformed ({len(shapes)} shapes), 0 crashes, "
          f"{len(entries)} DLQ entries")
