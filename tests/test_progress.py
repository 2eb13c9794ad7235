"""Progress reports: ``current_task().update_state(...)`` from async and sync tasks, seen
as Celery sees a custom state (a real Celery ``AsyncResult``) and by ``handle.state`` /
``handle.info``, while the task runs. Real worker subprocesses, private Redis."""

from __future__ import annotations

import uuid

import pytest
import redis
from celery import Celery

from relier.protocol import results
from relier.store import control as control_store
from relier.store import keys
from tests.conftest import StartWorker
from tests.polling import poll
from tests.taskapps import control
from tests.taskapps.control import go_key

APP = "tests.taskapps.control:app"
RESULT_TIMEOUT = 30.0


@pytest.mark.parametrize("task, meta", [
    ("ctl.progress", {"done": 3, "of": 10}),
    ("ctl.sync_progress", {"done": 5, "of": 10}),
    ("ctl.async_blocking_progress", {"step": "one"}),
])
@pytest.mark.usefixtures("control_app")
def test_celery_and_relier_see_progress_while_the_task_runs(
    start_worker: StartWorker, celery_client: Celery, rclient: redis.Redis, task: str,
    meta: dict[str, object],
) -> None:
    queue = f"pg-{uuid.uuid4().hex[:8]}"
    start_worker(APP, queues=queue)
    key = uuid.uuid4().hex
    sent = celery_client.send_task(task, (key,), queue=queue)
    poll(lambda: sent.state == "PROGRESS", 30, "Celery to see PROGRESS")
    assert sent.info == meta
    assert not sent.ready()
    handle = control.app.result(sent.id)
    assert (handle.state, handle.info) == ("PROGRESS", meta)
    # Stored as Celery stores a custom state: not ready, so no date_done.
    stored = results.decode(rclient.get(keys.result(sent.id)))  # type: ignore[arg-type]
    assert stored.date_done is None and stored.relier_task == task
    rclient.set(go_key(key), 1)
    assert sent.get(timeout=RESULT_TIMEOUT) == "finished"
    assert (handle.state, handle.info) == ("SUCCESS", "finished")
    assert handle.result(timeout=1) == "finished"


@pytest.mark.usefixtures("control_app")
async def test_async_info(start_worker: StartWorker, rclient: redis.Redis) -> None:
    queue = f"pg-{uuid.uuid4().hex[:8]}"
    start_worker(APP, queues=queue)
    key = uuid.uuid4().hex
    handle = await control.progress.options(queue=queue).apush(key)
    poll(lambda: handle.state == "PROGRESS", 30, "PROGRESS")
    assert await handle.ainfo() == {"done": 3, "of": 10}
    assert await handle.astatus() == "PROGRESS"
    rclient.set(go_key(key), 1)
    assert await handle.aresult(timeout=RESULT_TIMEOUT) == "finished"


@pytest.mark.usefixtures("control_app")
def test_bad_states_are_refused_with_a_clear_error(start_worker: StartWorker) -> None:
    queue = f"pg-{uuid.uuid4().hex[:8]}"
    start_worker(APP, queues=queue)
    errors = control.bad_states.options(queue=queue).push().result(timeout=RESULT_TIMEOUT)
    assert errors[0] == ("ValueError: update_state: SUCCESS is a final state; return a "
                         "value or raise instead")
    assert errors[1].startswith("ValueError: update_state: state must be a non-empty")
    assert errors[2].startswith("TypeError: update_state: meta is not JSON-serialisable")


def test_update_state_outside_a_worker_says_so() -> None:
    from relier.context import TaskContext

    context = TaskContext(id="x", name="n", queue="q", attempt=1, resurrections=0,
                          idempotency_key=None, worker_id="w")
    with pytest.raises(RuntimeError, match="needs a task run by a Relier worker"):
        context.update_state(meta={})


def test_a_late_report_never_replaces_a_final_state(rclient: redis.Redis) -> None:
    """A run that was revoked (or outlived its resurrection) cannot undo a final state."""
    task_id = str(uuid.uuid4())
    progress = results.encode(results.custom_state(task_id, "PROGRESS", {"n": 1}))
    assert control_store.store_progress_sync(rclient, task_id, progress, 60)
    assert 0 < rclient.ttl(keys.result(task_id)) <= 60
    final = results.encode(results.revoked(task_id, "terminated"))
    rclient.set(keys.result(task_id), final)
    assert not control_store.store_progress_sync(rclient, task_id, progress, 60)
    assert rclient.get(keys.result(task_id)) == final
