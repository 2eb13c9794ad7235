"""Relier side of the Celery interop tests.

``app`` is what a Relier worker subprocess runs (``-A tests.taskapps.interop_relier:app``):
tasks that Celery producers send by name, and the ``probe.*`` tasks the hand-built wire
vectors in ``tests/vectors`` name.

``producer`` is an App the test process pushes from to a *Celery* worker: its tasks are
registered under the names of the tasks in :mod:`tests.taskapps.interop_celery` and are
never run by Relier.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from typing import NoReturn

from relier import App

app = App()


class InteropError(Exception):
    """A non-builtin exception, so a Celery reader has to find the class by module."""


@app.task(name="interop.add")
async def add(x: int, y: int, z: int = 0) -> int:
    return x + y + z


@app.task(name="interop.fail")
async def fail(message: str) -> NoReturn:
    raise ValueError(message, 7)


@app.task(name="interop.custom_fail")
def custom_fail(message: str) -> NoReturn:
    raise InteropError(message)


@app.task(name="interop.quote", idempotent=True)
async def quote(sku: str, quantity: int) -> dict[str, object]:
    """Idempotent: its result is kept in the idempotency record and in Celery's format."""
    return {"sku": sku, "quantity": quantity, "total_cents": quantity * 250}


@app.task(name="interop.stamp")
async def stamp(label: str) -> dict[str, object]:
    """When it ran (unix seconds), so a test can compare it with the message's eta."""
    return {"label": label, "ran_at": time.time()}


# -- the tasks the vectors in tests/vectors name (Celery's queue "celery") ----------------


@app.task(name="probe.add", queue="celery")
def probe_add(x: int, y: int, z: int = 0) -> int:
    return x + y + z


@app.task(name="probe.echo", queue="celery")
async def probe_echo(*args: str, **kwargs: str) -> dict[str, object]:
    return {"args": list(args), "kwargs": kwargs}


# -- stand-ins for the Celery worker's tasks (pushed from here, run by Celery) -----------

producer = App()


@producer.task(name="interop.celery_mul")
def celery_mul(x: int, y: int, z: int = 1) -> int:
    raise NotImplementedError("runs on the Celery worker")


@producer.task(name="interop.celery_fail")
def celery_fail(message: str) -> int:
    raise NotImplementedError("runs on the Celery worker")


@producer.task(name="interop.celery_custom_fail")
def celery_custom_fail(message: str) -> int:
    raise NotImplementedError("runs on the Celery worker")


@producer.task(name="interop.celery_echo")
async def celery_echo(payload: dict[str, object]) -> dict[str, object]:
    raise NotImplementedError("runs on the Celery worker")


# -- canvas (tests/test_canvas_interop.py) ------------------------------------------------

#: Redis list each run of ``interop.step`` and each ``interop.record`` call appends to.
STEP_RUNS = "test:canvas:runs"
RECORDS = "test:canvas:records"


@app.task(name="interop.tsum")
async def tsum(values: list[int]) -> int:
    return sum(values)


@app.task(name="interop.record")
async def record(*args: object, **kwargs: object) -> str:
    """A link callback or errback: what it was called with, and its own ids."""
    from relier import current_task

    ctx = current_task()
    entry = json.dumps({"id": ctx.id, "args": list(args), "kwargs": kwargs})
    await app.broker().client.rpush(RECORDS, entry)
    return ctx.id


@app.task(name="interop.step")
async def step(x: int, hold: float) -> int:
    """One chain step: records its run (id, resurrections), holds ``hold`` seconds on its
    first delivery only (long enough to be killed in), and returns ``x + 1``."""
    from relier import current_task

    ctx = current_task()
    run = json.dumps({"id": ctx.id, "resurrections": ctx.resurrections})
    await app.broker().client.rpush(STEP_RUNS, run)
    if ctx.resurrections == 0 and hold:
        await asyncio.sleep(hold)
    return x + 1


@producer.task(name="interop.celery_tsum")
def celery_tsum(values: list[int]) -> int:
    raise NotImplementedError("runs on the Celery worker")


@app.task(name="interop.crash")
async def crash() -> None:
    """Ends its worker process, as a segfault or the OOM killer would."""
    os._exit(1)
