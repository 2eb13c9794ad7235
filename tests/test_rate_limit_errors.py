"""Regression: a rate-limit bucket whose script fails must not crash or lose the task.

The settler turns a script error reply into None; the rate-limit path used to check for
an exception only, so ``int(None)`` raised and the message was quarantined (before the
executor's backstop existed, it ended the worker). A broken bucket now means: run the
task unthrottled, and say so in one log line.
"""

from __future__ import annotations

import logging

import pytest
import redis

from relier import App
from relier.protocol import results as result_codec
from relier.runtime.rate_limit import defer_if_limited
from relier.store import keys
from tests.inprocess import runtime


def _limited_app() -> tuple[App, object]:
    app = App()

    @app.task(name="limited.add", rate_limit="1/m")
    async def add(x: int, y: int) -> int:
        return x + y

    return app, add


async def test_a_failing_bucket_script_runs_the_task_unthrottled(
    redis_url: str, rclient: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    app, add = _limited_app()
    # A bucket key of the wrong type makes rate_limit.lua fail with WRONGTYPE.
    rclient.hset(keys.rate_limit("limited.add"), "x", "1")
    async with runtime(redis_url, app) as rt:
        handle = await add.apush(2, 3)  # type: ignore[attr-defined]
        delivery = await rt.take_one()
        with caplog.at_level(logging.ERROR, logger="relier.task"):
            await rt.executor().execute(delivery)
        assert delivery.settled is not None and delivery.settled.kind == "ack"
        assert delivery.settled.accepted
        stored = rclient.get(keys.result(handle.id))
        assert stored is not None and result_codec.decode(stored).result == 5
    assert rclient.llen(keys.processing("default", rt.worker_id)) == 0
    assert rclient.zcard(keys.delayed("default")) == 0
    assert "rate limit of limited.add unavailable" in caplog.text


async def test_defer_if_limited_reports_no_deferral_on_a_script_error(
    redis_url: str, rclient: redis.Redis
) -> None:
    app, add = _limited_app()
    rclient.set(keys.rate_limit("limited.add"), "not a number")
    async with runtime(redis_url, app) as rt:
        await add.apush(1, 1)  # type: ignore[attr-defined]
        delivery = await rt.take_one()
        from relier.protocol import message as wire

        message = wire.decode(delivery.raw)
        parked = await defer_if_limited(delivery, message, app.tasks["limited.add"],
                                        lambda settle: settle)
        assert parked is False
        assert delivery.settled is None  # nothing was settled: the caller runs it
