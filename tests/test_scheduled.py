"""countdown, eta and expires on real worker subprocesses: delayed work waits in Redis,
not in the worker, and a message that arrives after it expired is not run."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import redis
from celery import Celery
from celery.exceptions import TaskRevokedError

from relier.protocol import dead_letter
from relier.store import keys
from tests.conftest import StartWorker
from tests.polling import poll
from tests.taskapps import timeouts

APP = "tests.taskapps.timeouts:app"
#: How early a worker may start a task before its eta (its ETA_TOLERANCE_S).
EARLY = 0.05
DELAYED = 10_000

pytestmark = pytest.mark.usefixtures("timeouts_app")


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def dlq(client: redis.Redis, queue: str = "default") -> list[dead_letter.DeadLetter]:
    return [dead_letter.decode(raw) for raw in client.lrange(keys.dead_letters(queue), 0, -1)]


def test_countdown_is_not_started_before_it_is_due(
    start_worker: StartWorker, rclient: redis.Redis
) -> None:
    start_worker(APP)
    pushed_at = time.time()
    handle = timeouts.stamp.options(countdown=2).push("countdown")
    assert rclient.zcard(keys.delayed("default")) == 1  # waiting in Redis, not in a list
    started_at = handle.result(timeout=30)
    waited = started_at - pushed_at
    assert waited >= 2 - EARLY, f"started {waited:.3f}s after the push"
    assert waited < 2 + 10  # soon after; generous for a noisy machine
    assert rclient.zcard(keys.delayed("default")) == 0


def test_ten_thousand_delayed_tasks_stay_in_redis_not_in_the_worker(
    start_worker: StartWorker, rclient: redis.Redis
) -> None:
    worker = start_worker(APP)
    assert timeouts.add.push(1, 1).result(timeout=30) == 2  # warmed up
    before = rss_bytes(worker.pid)

    handles = timeouts.stamp.options(countdown=3600).push_many(
        [((f"later-{i}",), {}) for i in range(DELAYED)])
    assert rclient.zcard(keys.delayed("default")) == DELAYED
    held_bytes = sum(len(raw) for raw in rclient.zrange(keys.delayed("default"), 0, -1))

    # Many pump and fetch rounds later, the worker still serves and holds none of them.
    for i in range(20):
        assert timeouts.add.push(i, 1).result(timeout=30) == i + 1
    after = rss_bytes(worker.pid)
    assert rclient.zcard(keys.delayed("default")) == DELAYED
    assert not list(rclient.scan_iter(match=keys.processing("default", "*")))
    assert rclient.llen("default") == 0
    assert handles[0].status() == "PENDING"
    # Holding the messages would cost more than their bytes; allow a quarter of that.
    assert after - before < held_bytes / 4, (before, after, held_bytes)
    print(f"\nRSS before {before / 2**20:.1f} MiB, after {DELAYED} delayed "
          f"{after / 2**20:.1f} MiB; the delayed messages hold {held_bytes / 2**20:.1f} MiB")


def test_expired_message_is_not_run_and_reads_revoked_in_celery(
    start_worker: StartWorker, rclient: redis.Redis, celery_client: Celery
) -> None:
    start_worker(APP)
    past = datetime.now(UTC) - timedelta(seconds=30)
    expired = timeouts.stamp.options(expires=past).push("expired")
    # Due in 1 s but expiring in 0.5 s: it leaves the delayed set already expired.
    late = timeouts.stamp.options(countdown=1, expires=0.5).push("expired-late")

    for handle in (expired, late):
        result = celery_client.AsyncResult(handle.id)
        with pytest.raises(TaskRevokedError, match="expired"):
            result.get(timeout=30)
        assert result.state == "REVOKED"
    entries = {e.task_id: e for e in dlq(rclient)}
    assert {entries[expired.id].reason, entries[late.id].reason} == {"expired"}
    assert timeouts.add.push(1, 2).result(timeout=30) == 3
    assert rclient.llen(timeouts.started_key("expired")) == 0
    assert rclient.llen(timeouts.started_key("expired-late")) == 0


def test_celery_eta_waits_in_the_delayed_set(
    start_worker: StartWorker, rclient: redis.Redis, celery_client: Celery
) -> None:
    queue = f"celery-eta-{uuid.uuid4().hex[:8]}"
    start_worker(APP, queues=queue)
    eta = datetime.now(UTC) + timedelta(seconds=2)
    sent = celery_client.send_task("timeouts.stamp", ("celery-eta",), queue=queue, eta=eta)
    # The worker took it from the list and parked it in Redis, not in its memory.
    poll(lambda: rclient.zcard(keys.delayed(queue)) == 1, 30, "the message to be parked")
    assert not list(rclient.scan_iter(match=keys.processing(queue, "*")))
    started_at = sent.get(timeout=30)
    assert started_at >= eta.timestamp() - EARLY
