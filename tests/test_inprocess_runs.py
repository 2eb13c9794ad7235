"""The executor tasks (relier/runtime/runs.py) keep a task group's guarantees while
starting each run as a plain asyncio task: cancelling reaches every run (level-triggered,
shields kept), leaving the block waits for them, each run has its own context, and what
escapes a run is raised again."""

from __future__ import annotations

import contextvars

import anyio
import anyio.lowlevel
import pytest
import redis

from relier import App
from relier.protocol import results as result_codec
from relier.runtime.runs import Runs, run_scope
from relier.store import keys
from tests.inprocess import runtime

_var: contextvars.ContextVar[str] = contextvars.ContextVar("_var", default="unset")


async def test_cancel_reaches_running_runs_and_later_ones() -> None:
    ended: list[str] = []

    async def sleeper(name: str) -> None:
        try:
            await anyio.sleep(30)
        finally:
            ended.append(name)

    with anyio.fail_after(5):
        async with Runs() as runs:
            runs.start(sleeper("a"), name="a")
            runs.start(sleeper("b"), name="b")
            await anyio.lowlevel.checkpoint()
            runs.cancel()
            runs.start(sleeper("late"), name="late")
    assert sorted(ended) == ["a", "b", "late"]
    assert len(runs) == 0


async def test_a_run_that_swallows_one_cancellation_is_cancelled_again() -> None:
    stages: list[str] = []

    async def stubborn() -> None:
        try:
            await anyio.sleep(30)
        except anyio.get_cancelled_exc_class():
            stages.append("swallowed")
        await anyio.sleep(30)  # cancelled again here (anyio's level-triggered delivery)
        stages.append("never")

    with anyio.fail_after(5):
        async with Runs() as runs:
            runs.start(stubborn(), name="stubborn")
            await anyio.lowlevel.checkpoint()
            runs.cancel()
    assert stages == ["swallowed"]


async def test_a_shielded_part_of_a_run_finishes_after_cancel() -> None:
    done: list[bool] = []
    started = anyio.Event()

    async def settling() -> None:
        with anyio.CancelScope(shield=True):
            started.set()
            await anyio.sleep(0.2)
            done.append(True)
        await anyio.sleep(30)

    with anyio.fail_after(5):
        async with Runs() as runs:
            runs.start(settling(), name="settling")
            await started.wait()
            runs.cancel()
    assert done == [True]


async def test_leaving_the_block_waits_for_the_runs() -> None:
    done: list[int] = []

    async def short(i: int) -> None:
        await anyio.sleep(0.05)
        done.append(i)

    async with Runs() as runs:
        for i in range(20):
            runs.start(short(i), name=f"short {i}")
    assert sorted(done) == list(range(20))


async def test_each_run_has_its_own_context() -> None:
    seen: dict[str, str] = {}

    async def setter() -> None:
        _var.set("set by a run")
        await anyio.sleep(0.01)

    async def reader() -> None:
        await anyio.sleep(0.05)
        seen["reader"] = _var.get()

    async with Runs() as runs:
        runs.start(setter(), name="setter")
        runs.start(reader(), name="reader")
    assert seen == {"reader": "unset"}
    assert _var.get() == "unset"


async def test_what_escapes_a_run_is_raised_when_the_block_ends() -> None:
    class Escaped(BaseException):
        pass

    async def escaping() -> None:
        raise Escaped

    with pytest.raises(Escaped):
        async with Runs() as runs:
            runs.start(escaping(), name="escaping")
            await anyio.sleep(0.05)


async def test_an_error_in_the_block_cancels_the_runs() -> None:
    ended: list[str] = []

    async def sleeper() -> None:
        try:
            await anyio.sleep(30)
        finally:
            ended.append("ended")

    with anyio.fail_after(5), pytest.raises(RuntimeError):
        async with Runs() as runs:
            runs.start(sleeper(), name="sleeper")
            await anyio.lowlevel.checkpoint()
            raise RuntimeError("the fetcher failed")
    assert ended == ["ended"]


async def test_a_terminated_run_is_recorded_as_terminated(
    redis_url: str, rclient: redis.Redis
) -> None:
    """Inside Runs, a revoke with terminate cancels the run's own scope (no scope of its
    own around the call): the task stops at its await, and the run still settles it as
    REVOKED (terminated), its settle shielded from the cancellation it goes on under."""
    app = App()
    started = anyio.Event()
    in_a_run: list[bool] = []

    @app.task(name="runs.wait")
    async def wait() -> None:
        in_a_run.append(run_scope() is not None)
        started.set()
        await anyio.sleep(30)

    async with runtime(redis_url, app) as rt:
        handle = await wait.apush()  # type: ignore[attr-defined]
        executor = rt.executor()
        delivery = await rt.take_one()
        executor._capacity.take()  # as the fetcher does before it hands a delivery out
        with anyio.fail_after(10):
            async with Runs() as runs:
                runs.start(executor.execute(delivery), name="run")
                await started.wait()
                assert executor.terminations.terminate([handle.id]) == [handle.id]
        assert delivery.settled is not None and delivery.settled.accepted
        assert delivery.settled.reason == "terminated"
        assert in_a_run == [True]  # the run's scope is what the terminate cancelled
    stored = rclient.get(keys.result(handle.id))
    assert stored is not None
    meta = result_codec.decode(stored)
    assert meta.status == "REVOKED"
    assert rclient.llen(keys.processing("default", rt.worker_id)) == 0
