"""Tasks pushed by the example web apps (FastAPI, Flask, Django).

Serve them with one worker:  relier worker -A examples.web_tasks -Q emails,default,reports
"""

from __future__ import annotations

import asyncio
from typing import Any

from relier import TaskFailed, current_task
from relier.tasks import app
from relier.tasks.decorator import rl_task


# At most 20 emails wait at once (a 21st push is refused: the web apps answer 429), and
# the mail provider accepts 5 a second from all workers together.
@rl_task(queue="emails", max_queue_depth=20, rate_limit="5/s")
async def send_welcome_email(address: str) -> str:
    """Pretend to call a mail provider."""
    await asyncio.sleep(0.1)
    return f"welcome email sent to {address}"


@rl_task
async def add(x: int, y: int) -> int:
    """A task whose result the web app waits for."""
    return x + y


@rl_task(queue="reports")
async def build_report(pages: int, seconds_per_page: float = 0.2) -> dict[str, int]:
    """A long task that reports its progress (the web apps' status endpoint shows it).

    The compose stack's crash drill makes it slow (``seconds_per_page=1``) and kills its
    worker mid-run; the recovery pool runs it again from the first page.
    """
    for page in range(pages):
        await current_task().aupdate_state(state="PROGRESS", meta={"done": page, "of": pages})
        await asyncio.sleep(seconds_per_page)
    return {"pages": pages}


def task_status(task_id: str) -> dict[str, Any]:
    """What a status endpoint answers for any task id (the client started it earlier and
    kept only the id): its state, and its progress, result or error."""
    handle = app.result(task_id)
    state = handle.state
    return describe(task_id, state, handle.info)


def describe(task_id: str, state: str, info: Any) -> dict[str, Any]:
    """``state`` plus ``result`` (SUCCESS), ``error`` (FAILURE, REVOKED) or ``progress``."""
    body: dict[str, Any] = {"task_id": task_id, "state": state}
    if isinstance(info, TaskFailed):
        body["error"] = str(info)
    elif state == "SUCCESS":
        body["result"] = info
    elif info is not None:
        body["progress"] = info
    return body
