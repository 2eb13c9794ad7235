"""The executor in the test's event loop, against the real test server (no subprocess):
it runs a good message, dead-letters an undecodable one, and an observer that raises
cannot stop a task from settling or the executor from going on."""

from __future__ import annotations

import logging

import pytest
import redis

from relier import App
from relier.observability.recorder import TaskRecorder
from relier.protocol import dead_letter
from relier.protocol import results as result_codec
from relier.runtime.capacity import Capacity
from relier.runtime.delivery import Delivery
from relier.store import keys
from relier.store.broker import as_bytes
from relier.testing import AsyncTestWorker
from tests.inprocess import runtime


def _app() -> tuple[App, object]:
    app = App()

    @app.task(name="inproc.add")
    async def add(x: int, y: int) -> int:
        return x + y

    return app, add


def _result(rclient: redis.Redis, task_id: str) -> object:
    stored = rclient.get(keys.result(task_id))
    assert stored is not None, f"no result stored for {task_id}"
    return result_codec.decode(stored).result


async def test_a_good_message_runs_and_its_result_is_stored(
    redis_url: str, rclient: redis.Redis
) -> None:
    app, add = _app()
    async with runtime(redis_url, app) as rt:
        handle = await add.apush(20, 22)  # type: ignore[attr-defined]
        await rt.executor().execute(await rt.take_one())
        assert _result(rclient, handle.id) == 42
    assert rclient.llen(keys.processing("default", rt.worker_id)) == 0


async def test_an_undecodable_message_is_dead_lettered_and_the_next_one_runs(
    redis_url: str, rclient: redis.Redis
) -> None:
    app, add = _app()
    rclient.lpush(keys.queue_list("default"), b"\xff not json at all")
    async with runtime(redis_url, app) as rt:
        executor = rt.executor()
        await executor.execute(await rt.take_one())
        handle = await add.apush(1, 2)  # type: ignore[attr-defined]
        await executor.execute(await rt.take_one())
        assert _result(rclient, handle.id) == 3
    entries = rclient.lrange(keys.dead_letters("default"), 0, -1)
    assert len(entries) == 1
    entry = dead_letter.decode(as_bytes(entries[0]))
    assert entry.reason == "not_json"
    assert rclient.llen(keys.processing("default", rt.worker_id)) == 0


class _Broken:
    """An observer whose every hook raises."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def started(self, delivery: Delivery) -> None:
        self.calls.append("started")
        raise RuntimeError("observer broke in started")

    def finished(self, delivery: Delivery) -> None:
        self.calls.append("finished")
        raise RuntimeError("observer broke in finished")


class _Counting:
    """A healthy observer after the broken one: it must still be told."""

    def __init__(self) -> None:
        self.finished_ids: list[object] = []

    def started(self, delivery: Delivery) -> None:
        pass

    def finished(self, delivery: Delivery) -> None:
        assert delivery.settled is not None
        self.finished_ids.append(delivery.settled.kind)


async def test_a_raising_observer_is_logged_and_the_task_still_settles(
    redis_url: str, rclient: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    app, add = _app()
    broken, counting = _Broken(), _Counting()
    async with runtime(redis_url, app) as rt:
        capacity = Capacity(2)
        executor = rt.executor(capacity, observers=[broken, counting])
        handles = [await add.apush(i, i) for i in range(2)]  # type: ignore[attr-defined]
        with caplog.at_level(logging.ERROR, logger="relier.worker"):
            for _ in handles:
                capacity.take()
                await executor.execute(await rt.take_one())  # returns: nothing escaped
        assert [_result(rclient, h.id) for h in handles] == [0, 2]
        # Both slots were given back although finished() raised after each settle.
        assert capacity.free == 2
    assert broken.calls == ["started", "finished"] * 2
    assert counting.finished_ids == ["ack", "ack"]
    assert rclient.llen(keys.processing("default", rt.worker_id)) == 0
    failures = [r.getMessage() for r in caplog.records if r.exc_info]
    assert sum(".started failed on a delivery from 'default'" in m for m in failures) == 2
    assert sum(".finished failed on a delivery from 'default'" in m for m in failures) == 2


class _BrokenMetrics:
    def task_ended(self, *args: object) -> None:
        raise RuntimeError("metrics backend broke")


async def test_failing_metrics_cost_neither_the_outcome_line_nor_the_settle(
    redis_url: str, rclient: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    app, add = _app()
    recorder = TaskRecorder("inproc-worker", metrics=_BrokenMetrics())  # type: ignore[arg-type]
    async with runtime(redis_url, app) as rt:
        handle = await add.apush(4, 5)  # type: ignore[attr-defined]
        with caplog.at_level(logging.INFO):
            await rt.executor(observers=[recorder]).execute(await rt.take_one())
        assert _result(rclient, handle.id) == 9
    assert f"task inproc.add[{handle.id}] success" in caplog.text
    assert "observer metrics failed" in caplog.text
    assert recorder.running() == []  # the running table forgot it all the same


async def test_the_real_worker_stays_up_when_its_recorder_raises(
    redis_url: str, rclient: redis.Redis, monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The production Worker on the test's loop (relier.testing's harness), with every
    observer hook of its recorder broken: tasks still settle and the worker runs on."""

    def broken(self: TaskRecorder, delivery: Delivery) -> None:
        raise RuntimeError("recorder broke")

    monkeypatch.setattr(TaskRecorder, "started", broken)
    monkeypatch.setattr(TaskRecorder, "finished", broken)
    app, add = _app()
    app.configure(redis_url=redis_url)
    worker = AsyncTestWorker(app, queues=["default"])
    await worker.start()
    try:
        first = await add.apush(1, 1)  # type: ignore[attr-defined]
        await worker.drain()
        second = await add.apush(2, 2)  # type: ignore[attr-defined]
        await worker.drain()  # raises if the worker task had died
        assert [_result(rclient, h.id) for h in (first, second)] == [2, 4]
    finally:
        await worker.stop()  # a clean stop: re-raises anything the worker died of
        await app.aclose()
        app.close()
    assert "recorder broke" in caplog.text
