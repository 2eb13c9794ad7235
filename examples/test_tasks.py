"""A user's tests of examples/tasks.py, with relier.testing's fixtures only.

Run: ``pytest -p relier.testing examples/test_tasks.py`` (a project enables the plugin
once in its conftest.py instead: ``pytest_plugins = ["relier.testing"]``).
"""

from __future__ import annotations

import pytest

from examples.tasks import add, explode, resize_image
from relier import App, TaskFailed
from relier.testing import AsyncTestWorker, SyncTestWorker


async def test_add_runs_on_a_real_worker(relier_worker: AsyncTestWorker) -> None:
    handle = await add.apush(2, 3)
    await relier_worker.drain()
    assert await handle.aresult(timeout=5) == 5


def test_sync_task_from_a_sync_test(relier_worker: SyncTestWorker) -> None:
    handles = resize_image.push_many([(("a.png", 100), {}), (("b.png", 200), {})])
    relier_worker.drain()
    assert [h.result(timeout=5)["width"] for h in handles] == [100, 200]


async def test_a_failure_reaches_the_caller_and_the_dlq(relier_worker: AsyncTestWorker) -> None:
    handle = await explode.apush("boom")
    await relier_worker.drain()
    with pytest.raises(TaskFailed, match="boom"):
        await handle.aresult(timeout=5)
    [entry] = relier_worker.dead_letters(task=explode.name)
    assert (entry.reason, entry.task_id) == ("exception", handle.id)
    meta = relier_worker.result(handle.id)
    assert meta is not None and meta.status == "FAILURE"


def test_bad_arguments_never_reach_the_queue(relier_app: App) -> None:
    with pytest.raises(TypeError):
        add.push("two", 3)  # type: ignore[arg-type]
    assert relier_app.sync_client().llen("default") == 0
