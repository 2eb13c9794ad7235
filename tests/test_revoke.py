"""Revoking tasks: Celery's ``app.control.revoke``, ``handle.revoke`` and ``relier revoke``.

Real ``relier worker`` subprocesses, a real Celery client, the session's private Redis.
A task marks ``test:ran:<id>`` when it starts, so "not run" is checked, not assumed.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid

import pytest
import redis
from celery import Celery
from celery.exceptions import TaskRevokedError

from relier import TaskFailed
from relier.protocol import results
from relier.store import keys
from tests.conftest import ROOT, StartWorker, WorkerProcess
from tests.polling import poll
from tests.taskapps import control
from tests.taskapps.control import go_key, ran_key

APP = "tests.taskapps.control:app"
RESULT_TIMEOUT = 30.0


def unique_queue() -> str:
    return f"rv-{uuid.uuid4().hex[:8]}"


def listening(start_worker: StartWorker, queue: str) -> WorkerProcess:
    worker = start_worker(APP, queues=queue)
    worker.wait_for_line("remote control: listening")
    return worker


def stored(rclient: redis.Redis, task_id: str) -> results.ResultMeta | None:
    raw = rclient.get(keys.result(task_id))
    return results.decode(raw) if raw else None


def revoked_reason(rclient: redis.Redis, task_id: str) -> str | None:
    meta = stored(rclient, task_id)
    if meta is None or meta.status != results.REVOKED:
        return None
    return str(meta.exception[2][0])


def test_celery_revoke_of_a_queued_task(
    start_worker: StartWorker, celery_client: Celery, rclient: redis.Redis
) -> None:
    queue = unique_queue()
    worker = listening(start_worker, queue)
    # Due in a few seconds: it waits in the delayed set, then the worker takes it.
    later = celery_client.send_task("ctl.mark", (1,), queue=queue, countdown=3)
    celery_client.control.revoke(later.id)
    poll(lambda: rclient.zscore(keys.REVOKED, later.id), 30, "the revocation in Redis")
    assert later.state == "REVOKED"  # stored at once: it had not started
    worker.wait_for_line(f"ctl.mark[{later.id}] revoked in", timeout=60)
    assert not rclient.exists(ran_key(later.id))
    with pytest.raises(TaskRevokedError):
        later.get(timeout=RESULT_TIMEOUT)
    # The worker's own skip rewrote Celery's REVOKED ("revoked"), still not run.
    assert revoked_reason(rclient, later.id) == "revoked"


def test_a_revocation_outlives_worker_restarts(
    start_worker: StartWorker, celery_client: Celery, rclient: redis.Redis
) -> None:
    """Celery forgets revoked ids when its workers restart; Relier keeps them in Redis."""
    queue = unique_queue()
    first = listening(start_worker, queue)
    doomed = f"doomed-{uuid.uuid4()}"
    celery_client.control.revoke(doomed)
    poll(lambda: rclient.zscore(keys.REVOKED, doomed), 30, "the revocation in Redis")
    first.kill()
    # Sent after the only worker died, under the revoked id; a new worker starts later.
    celery_client.send_task("ctl.mark", (2,), queue=queue, task_id=doomed)
    second = start_worker(APP, queues=queue)
    second.wait_for_line(f"ctl.mark[{doomed}] revoked in", timeout=60)
    assert not rclient.exists(ran_key(doomed))
    assert revoked_reason(rclient, doomed) == "revoked"


def test_celery_revoke_terminate_cancels_a_running_async_task(
    start_worker: StartWorker, celery_client: Celery, rclient: redis.Redis
) -> None:
    queue = unique_queue()
    worker = listening(start_worker, queue)
    running = celery_client.send_task("ctl.wait", ("never",), queue=queue)
    poll(lambda: rclient.exists(ran_key(running.id)), 30, "the task to start")
    replies = celery_client.control.revoke(running.id, terminate=True, reply=True,
                                           timeout=5)
    assert [next(iter(r.values())) for r in replies] == [{"ok": f"terminate: {running.id}"}]
    with pytest.raises(TaskRevokedError):
        running.get(timeout=RESULT_TIMEOUT)
    assert revoked_reason(rclient, running.id) == "terminated"
    worker.wait_for_line(f"ctl.wait[{running.id}] terminated in")
    assert rclient.lrange(ran_key(running.id), 0, -1) == [b"started"]  # never finished


def test_celery_revoke_terminate_marks_a_running_sync_task(
    start_worker: StartWorker, celery_client: Celery, rclient: redis.Redis
) -> None:
    queue = unique_queue()
    worker = listening(start_worker, queue)
    key = uuid.uuid4().hex
    running = celery_client.send_task("ctl.sync_wait", (key,), queue=queue)
    poll(lambda: rclient.exists(ran_key(running.id)), 30, "the task to start")
    replies = celery_client.control.revoke(running.id, terminate=True, reply=True,
                                           timeout=5)
    assert [next(iter(r.values())) for r in replies] == [{"ok": f"terminate: {running.id}"}]
    rclient.set(go_key(key), 1)  # a thread cannot be stopped: it runs to its end...
    worker.wait_for_line(f"ctl.sync_wait[{running.id}] terminated in")
    assert rclient.lrange(ran_key(running.id), 0, -1) == [b"started", b"finished"]
    # ...and its result is discarded.
    assert revoked_reason(rclient, running.id) == "terminated"


def test_revoke_without_terminate_lets_a_running_task_finish(
    start_worker: StartWorker, celery_client: Celery, rclient: redis.Redis
) -> None:
    queue = unique_queue()
    listening(start_worker, queue)
    key = uuid.uuid4().hex
    running = celery_client.send_task("ctl.wait", (key,), queue=queue)
    poll(lambda: rclient.exists(ran_key(running.id)), 30, "the task to start")
    replies = celery_client.control.revoke(running.id, reply=True, timeout=5)
    assert "flagged as revoked" in next(iter(replies[0].values()))["ok"]
    rclient.set(go_key(key), 1)
    assert running.get(timeout=RESULT_TIMEOUT) == "done"  # as a Celery worker does


@pytest.mark.usefixtures("control_app")
def test_handle_revoke_of_a_queued_task(
    start_worker: StartWorker, rclient: redis.Redis
) -> None:
    queue = unique_queue()
    handle = control.mark.options(queue=queue, countdown=2).push(3)
    handle.revoke()
    assert handle.state == "REVOKED"
    info = handle.info
    assert isinstance(info, TaskFailed) and info.exc_type == "TaskRevokedError"
    worker = start_worker(APP, queues=queue)
    worker.wait_for_line(f"ctl.mark[{handle.id}] revoked in", timeout=60)
    assert not rclient.exists(ran_key(handle.id))
    with pytest.raises(TaskFailed, match="REVOKED"):
        handle.result(timeout=5)


@pytest.mark.usefixtures("control_app")
async def test_async_handle_revoke_terminate(
    start_worker: StartWorker, rclient: redis.Redis
) -> None:
    queue = unique_queue()
    listening(start_worker, queue)
    handle = await control.wait.options(queue=queue).apush("never")
    poll(lambda: rclient.exists(ran_key(handle.id)), 30, "the task to start")
    await handle.arevoke(terminate=True)
    with pytest.raises(TaskFailed, match="REVOKED"):
        await handle.aresult(timeout=RESULT_TIMEOUT)
    # The client stores REVOKED at once (the task had no state yet, as a Celery worker
    # that does not run it would); the worker that stopped it then says "terminated".
    poll(lambda: revoked_reason(rclient, handle.id) == "terminated", 30, "terminated")
    assert rclient.lrange(ran_key(handle.id), 0, -1) == [b"started"]


@pytest.mark.usefixtures("control_app")
def test_relier_revoke_command(
    start_worker: StartWorker, rclient: redis.Redis, redis_url: str
) -> None:
    queue = unique_queue()
    worker = listening(start_worker, queue)
    running = control.wait.options(queue=queue).push("never")
    waiting = control.mark.options(queue=queue, countdown=2).push(4)
    poll(lambda: rclient.exists(ran_key(running.id)), 30, "the task to start")
    done = subprocess.run(
        [sys.executable, "-m", "relier", "revoke", running.id, waiting.id, "--terminate",
         "--redis-url", redis_url],
        cwd=ROOT, env=dict(os.environ), capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert f"revoked {waiting.id} (state now REVOKED)" in done.stdout
    worker.wait_for_line(f"ctl.wait[{running.id}] terminated in")
    worker.wait_for_line(f"ctl.mark[{waiting.id}] revoked in", timeout=60)
    assert revoked_reason(rclient, running.id) == "terminated"
    assert not rclient.exists(ran_key(waiting.id))


def test_relier_revoke_refuses_an_empty_id(redis_url: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "relier", "revoke", " ", "--redis-url", redis_url],
        cwd=ROOT, env=dict(os.environ), capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert done.stderr.strip() == "error: a task id cannot be empty"


def test_revoke_never_replaces_a_finished_result(rclient: redis.Redis) -> None:
    """``revoke.lua`` leaves a ready state alone (as Celery's worker does)."""
    from relier.store import control as control_store

    task_id = str(uuid.uuid4())
    rclient.set(keys.result(task_id), results.encode(results.success(task_id, 7)))
    revocation = control_store.Revocation([task_id], 60, 60)
    assert control_store.revoke_sync(rclient, revocation) == 0
    assert stored(rclient, task_id).status == "SUCCESS"  # type: ignore[union-attr]
    assert rclient.zscore(keys.REVOKED, task_id) is not None
    assert 0 < rclient.ttl(keys.REVOKED) <= 60
    rclient.set(keys.result(task_id), b"not json at all")  # hostile bytes: replaced
    assert control_store.revoke_sync(rclient, revocation) == 1
    assert stored(rclient, task_id).status == "REVOKED"  # type: ignore[union-attr]


@pytest.mark.usefixtures("control_app")
def test_a_revoked_idempotent_call_stays_revoked(
    start_worker: StartWorker, rclient: redis.Redis
) -> None:
    queue = unique_queue()
    key = f"order-{uuid.uuid4().hex[:6]}"
    first = control.mark.options(queue=queue, countdown=1, idempotency_key=key).push(5)
    first.revoke()
    worker = start_worker(APP, queues=queue)
    worker.wait_for_line(f"ctl.mark[{first.id}] revoked in", timeout=60)
    again = control.mark.options(queue=queue, idempotency_key=key).push(5)
    assert again.id == first.id  # answered from the record: not run
    with pytest.raises(TaskFailed, match="REVOKED"):
        again.result(timeout=5)
    assert not rclient.exists(ran_key(first.id))
