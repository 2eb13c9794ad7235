"""Soft and hard timeouts on real worker subprocesses: async tasks, Celery-sent limits,
sync tasks and their abandoned threads."""

from __future__ import annotations

import json
import signal
import uuid

import pytest
import redis
from billiard.exceptions import TimeLimitExceeded
from celery import Celery

from relier import TaskFailed
from relier.protocol import dead_letter, results
from relier.runtime.abandoned import EXIT_RECYCLE
from relier.store import keys
from tests.conftest import StartWorker
from tests.polling import poll
from tests.taskapps import timeouts

APP = "tests.taskapps.timeouts:app"
#: Seconds past the hard deadline within which cancellation must have happened. Generous
#: (a noisy machine); a task that is not cancelled runs 60 s.
NEAR = 5.0

pytestmark = pytest.mark.usefixtures("timeouts_app")


def dlq(client: redis.Redis, queue: str = "default") -> list[dead_letter.DeadLetter]:
    return [dead_letter.decode(raw) for raw in client.lrange(keys.dead_letters(queue), 0, -1)]


def hook_calls(client: redis.Redis, task_id: str) -> list[str]:
    return [v.decode() for v in client.lrange(timeouts.hooks_key(task_id), 0, -1)]


def test_hung_task_hook_runs_once_then_hard_timeout_dead_letters(
    start_worker: StartWorker, rclient: redis.Redis
) -> None:
    worker = start_worker(APP)
    handle = timeouts.hang.push("hung", 60.0)  # soft 0.5 s, hard 1.5 s

    with pytest.raises(TaskFailed) as caught:
        handle.result(timeout=30)
    assert caught.value.status == "FAILURE"
    assert (caught.value.exc_type, caught.value.exc_module) == (
        "TimeLimitExceeded", "billiard.exceptions")
    assert caught.value.exc_message == [1.5]

    [entry] = dlq(rclient)
    assert (entry.task_id, entry.reason, entry.attempts) == (handle.id, "hard_timeout", 1)
    assert entry.elapsed is not None and 1.5 <= entry.elapsed < 1.5 + NEAR
    assert "hard timeout of 1.5s exceeded" in entry.error
    # The stored traceback is where the task hung: inside `hang`, awaiting the sleep.
    assert entry.traceback is not None and "in hang" in entry.traceback
    assert "await asyncio.sleep(seconds)" in entry.traceback

    # The worker keeps serving; by then the hook has had every chance to run again.
    assert timeouts.add.push(2, 3).result(timeout=30) == 5
    assert hook_calls(rclient, handle.id) == ["timeouts.hang 1"]
    assert rclient.llen(timeouts.finished_key("hung")) == 0
    assert "passed its soft timeout of 0.5s" in worker.output


def test_per_call_limits_override_the_task_options(
    start_worker: StartWorker, rclient: redis.Redis
) -> None:
    start_worker(APP)
    # The task's own limits (0.5 s / 1.5 s) would kill a 2 s sleep; this call allows it.
    relaxed = timeouts.hang.options(soft_timeout=3, hard_timeout=5).push("relaxed", 2.0)
    assert relaxed.result(timeout=30) == "finished"
    assert hook_calls(rclient, relaxed.id) == []


def test_soft_timeout_alone_lets_the_task_finish(
    start_worker: StartWorker, rclient: redis.Redis
) -> None:
    start_worker(APP)
    handle = timeouts.hang.options(soft_timeout=0.3, hard_timeout=10).push("soft-only", 1.0)
    assert handle.result(timeout=30) == "finished"
    assert hook_calls(rclient, handle.id) == ["timeouts.hang 1"]
    assert dlq(rclient) == []


def test_celery_sent_time_limits_are_honoured(
    start_worker: StartWorker, celery_client: Celery, rclient: redis.Redis
) -> None:
    queue = f"celery-limits-{uuid.uuid4().hex[:8]}"
    start_worker(APP, queues=queue)
    # Celery writes these as the header timelimit = [2, 0.5] ([hard, soft]).
    sent = celery_client.send_task("timeouts.celery_hang", ("celery-hung", 60.0), queue=queue,
                                   time_limit=2, soft_time_limit=0.5)
    with pytest.raises(TimeLimitExceeded):
        sent.get(timeout=30)
    assert sent.state == "FAILURE"

    [entry] = dlq(rclient, queue)
    assert (entry.task_id, entry.reason) == (sent.id, "hard_timeout")
    assert entry.elapsed is not None and 2.0 <= entry.elapsed < 2.0 + NEAR
    assert entry.message["headers"]["timelimit"] == [2, 0.5]
    assert timeouts.add.options(queue=queue).push(1, 1).result(timeout=30) == 2
    assert hook_calls(rclient, sent.id) == ["timeouts.celery_hang 1"]


def test_sync_task_past_hard_timeout_fails_and_the_worker_keeps_serving(
    start_worker: StartWorker, rclient: redis.Redis
) -> None:
    worker = start_worker(APP, "--concurrency", "4")
    stuck = timeouts.sync_hang.push(60.0)  # hard timeout 1 s; the thread sleeps on
    with pytest.raises(TaskFailed) as caught:
        stuck.result(timeout=30)
    assert caught.value.exc_type == "TimeLimitExceeded"
    [entry] = dlq(rclient)
    assert (entry.task_id, entry.reason) == (stuck.id, "hard_timeout")
    assert entry.elapsed is not None and 1.0 <= entry.elapsed < 1.0 + NEAR
    # Where the thread was stuck when it was given up on.
    assert entry.traceback is not None and "in sync_hang" in entry.traceback

    assert [h.result(timeout=30) for h in timeouts.add.push_many(
        [((i, 1), {}) for i in range(10)])] == [i + 1 for i in range(10)]
    assert timeouts.sync_hang.push(0.1).result(timeout=30) == "finished"
    assert "1 such thread(s) running (max_abandoned_threads=10)" in worker.output
    assert worker.process.poll() is None


def test_abandoned_threads_past_the_limit_drain_and_exit_for_a_restart(
    start_worker: StartWorker, rclient: redis.Redis
) -> None:
    worker = start_worker(APP, "--concurrency", "4",
                          env={"RELIER_MAX_ABANDONED_THREADS": "1"})
    first = timeouts.sync_hang.push(60.0)
    with pytest.raises(TaskFailed):
        first.result(timeout=30)
    assert worker.process.poll() is None  # one abandoned thread is within the limit

    # A second one while a normal task is running: the worker stops fetching, lets the
    # running task finish, and exits although both threads are still asleep.
    running = timeouts.hang.options(soft_timeout=5, hard_timeout=10).push("drained", 3.0)
    poll(lambda: rclient.llen(timeouts.started_key("drained")), 30, "the task to start")
    second = timeouts.sync_hang.push(60.0)
    with pytest.raises(TaskFailed):
        second.result(timeout=30)
    assert worker.wait(timeout=30) == EXIT_RECYCLE
    assert running.result(timeout=5) == "finished"
    assert "draining, then exiting with code 75" in worker.output
    assert {e.task_id for e in dlq(rclient)} == {first.id, second.id}
    assert {e.reason for e in dlq(rclient)} == {"hard_timeout"}
    # It left cleanly: nothing held, nothing registered.
    assert rclient.hlen(keys.WORKERS) == 0
    stored = results.decode(rclient.get(keys.result(running.id)))
    assert stored.status == "SUCCESS"


def test_hard_timeout_is_retried_when_retries_remain(
    start_worker: StartWorker, rclient: redis.Redis
) -> None:
    start_worker(APP)
    handle = timeouts.hang_once.push("hang-once")  # retries=1, hard 1 s, hangs once
    assert handle.result(timeout=30) == 2
    assert dlq(rclient) == []
    assert rclient.llen(timeouts.started_key("hang-once")) == 2


def test_a_stuck_sync_thread_does_not_keep_a_stopped_worker_alive(
    start_worker: StartWorker, rclient: redis.Redis
) -> None:
    worker = start_worker(APP, env={"RELIER_SHUTDOWN_GRACE": "0.5"})
    handle = timeouts.sync_hang.options(hard_timeout=120).push(120.0)
    poll(lambda: int(rclient.hget(keys.stats("default"), "fetched") or 0) >= 1, 30,
         "the sync task to be taken")
    worker.signal(signal.SIGTERM)
    # Python would wait for the sleeping thread forever; the worker leaves it behind.
    assert worker.wait(timeout=30) == 0
    assert "leaving 1 thread(s) of sync tasks still running behind" in worker.output
    # Cut short by shutdown: back at the head of its queue, not failed.
    assert [json.loads(raw)["headers"]["id"] for raw in rclient.lrange("default", 0, -1)] == [
        handle.id]
