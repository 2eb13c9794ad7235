"""A task on a 1-second schedule, on a queue no test worker consumes, so that the tests
count what the leaders enqueued, tick by tick. Used via -A tests.taskapps.scheduled:app."""

from __future__ import annotations

import relier
from relier import App

app = App()


@app.task(name="sched.tick", queue="ticks", schedule=relier.every(seconds=1))
async def tick(label: str = "every-second") -> str:
    return label


@app.task(name="sched.ping", queue="ticks")
async def ping() -> None:
    return None
