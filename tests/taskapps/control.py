"""Tasks for the remote-control, revoke and progress tests (-A tests.taskapps.control:app).

Each task marks that it ran in Redis (``test:ran:<id>``), so a test can tell a task that
was skipped from one that ran, and waits on a key the test sets (``test:go:<key>``)
instead of sleeping for a guessed time.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from relier import App, current_task

app = App()

#: Seconds a task waits for its go key at most (a test that forgot it still ends).
WAIT_LIMIT_S = 60.0


def ran_key(task_id: str) -> str:
    return f"test:ran:{task_id}"


def go_key(key: str) -> str:
    return f"test:go:{key}"


def _mark_ran() -> None:
    app.sync_client().rpush(ran_key(current_task().id), "started")


async def _await_go(key: str) -> None:
    deadline = time.monotonic() + WAIT_LIMIT_S
    while not await app.broker().client.exists(go_key(key)):
        if time.monotonic() > deadline:
            raise TimeoutError(key)
        await asyncio.sleep(0.05)


def _block_go(key: str) -> None:
    client = app.sync_client()
    deadline = time.monotonic() + WAIT_LIMIT_S
    while not client.exists(go_key(key)):
        if time.monotonic() > deadline:
            raise TimeoutError(key)
        time.sleep(0.05)


@app.task(name="ctl.mark")
async def mark(value: int) -> int:
    _mark_ran()
    return value


@app.task(name="ctl.wait")
async def wait(key: str) -> str:
    _mark_ran()
    await _await_go(key)
    app.sync_client().rpush(ran_key(current_task().id), "finished")
    return "done"


@app.task(name="ctl.sync_wait")
def sync_wait(key: str) -> str:
    _mark_ran()
    _block_go(key)
    app.sync_client().rpush(ran_key(current_task().id), "finished")
    return "done"


@app.task(name="ctl.progress")
async def progress(key: str) -> str:
    await current_task().aupdate_state(state="PROGRESS", meta={"done": 3, "of": 10})
    await _await_go(key)
    return "finished"


@app.task(name="ctl.sync_progress")
def sync_progress(key: str) -> str:
    current_task().update_state(state="PROGRESS", meta={"done": 5, "of": 10})
    _block_go(key)
    return "finished"


@app.task(name="ctl.async_blocking_progress")
async def async_blocking_progress(key: str) -> str:
    """The blocking form from an async task works too (one round trip)."""
    current_task().update_state(meta={"step": "one"})
    await _await_go(key)
    return "finished"


@app.task(name="ctl.bad_states")
def bad_states() -> list[str]:
    """What update_state says to a final state name and to a meta that is not JSON."""
    errors = []
    for state, meta in (("SUCCESS", None), ("", None), ("PROGRESS", object())):
        try:
            current_task().update_state(state=state, meta=meta)
        except (ValueError, TypeError) as exc:
            errors.append(f"{type(exc).__name__}: {exc}")
    return errors


@app.task(name="ctl.echo")
async def echo(x: int, label: str = "") -> dict[str, Any]:
    return {"x": x, "label": label}
