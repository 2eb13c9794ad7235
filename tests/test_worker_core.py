"""The core path through real worker subprocesses: push, run, result, failure."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import redis

from relier import ArgumentError, ResultTimeout, TaskFailed
from relier.protocol import dead_letter
from relier.store import keys
from tests.conftest import StartWorker
from tests.taskapps import basic

APP = "tests.taskapps.basic:app"


pytestmark = pytest.mark.usefixtures("basic_app")


async def test_async_and_sync_tasks_return_results(start_worker: StartWorker) -> None:
    start_worker(APP)
    assert await (await basic.add.apush(2, 3)).aresult(timeout=10) == 5
    value = basic.sync_add.push(4, 5).result(timeout=10)
    assert value["sum"] == 9
    assert value["thread"] != "MainThread"


async def test_failure_reraises_with_remote_type_and_is_dead_lettered(
    start_worker: StartWorker, rclient: redis.Redis
) -> None:
    start_worker(APP)
    handle = await basic.fail.apush("boom")
    with pytest.raises(TaskFailed) as caught:
        await handle.aresult(timeout=10)
    assert caught.value.exc_type == "ValueError"
    assert caught.value.exc_module == "builtins"
    assert caught.value.exc_message == ["boom", 42]
    assert "ValueError" in (caught.value.remote_traceback or "")
    entries = [dead_letter.decode(e) for e in rclient.lrange(keys.dead_letters("default"), 0, -1)]
    assert [(e.task_id, e.reason) for e in entries] == [(handle.id, "exception")]


async def test_typed_arguments_are_rebuilt_on_the_worker(start_worker: StartWorker) -> None:
    start_worker(APP)
    when = datetime(2031, 5, 6, tzinfo=UTC)
    handle = await basic.typed.apush(basic.Order("o-1", 500), when)
    assert await handle.aresult(timeout=10) == {"order": "o-1", "year": 2031}


async def test_context_names_the_running_task(start_worker: StartWorker) -> None:
    start_worker(APP)
    handle = await basic.context.apush()
    ctx = await handle.aresult(timeout=10)
    assert ctx == {"id": handle.id, "name": "basic.context", "queue": "default", "attempt": 1}


def test_wrong_argument_type_fails_before_enqueue(rclient: redis.Redis) -> None:
    with pytest.raises(ArgumentError, match="argument 'y'") as caught:
        basic.add.push(1, "two")  # type: ignore[arg-type]
    assert isinstance(caught.value, TypeError)
    with pytest.raises(ArgumentError, match="missing a required argument"):
        basic.add.push(1)  # type: ignore[call-arg]
    assert rclient.llen("default") == 0


async def test_bulk_push_runs_every_call(start_worker: StartWorker) -> None:
    start_worker(APP, "--concurrency", "20")
    handles = await basic.add.apush_many([((i, i), {}) for i in range(200)])
    assert len({h.id for h in handles}) == 200
    assert [await h.aresult(timeout=30) for h in handles] == [2 * i for i in range(200)]


async def test_naive_eta_is_taken_as_utc(start_worker: StartWorker) -> None:
    start_worker(APP)
    naive_now = datetime.now(UTC).replace(tzinfo=None)
    handle = await basic.add.options(eta=naive_now).apush(1, 1)
    assert await handle.aresult(timeout=10) == 2


async def test_no_result_in_time_raises_result_timeout() -> None:
    handle = await basic.add.apush(1, 2)  # no worker is running
    with pytest.raises(ResultTimeout, match=handle.id):
        await handle.aresult(timeout=0.3)
    with pytest.raises(ResultTimeout):
        handle.result(timeout=0.3)
