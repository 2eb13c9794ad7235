"""Tasks pushed by the example web apps (FastAPI, Flask, Django).

Serve them with one worker:  relier worker -A examples.web_tasks -Q emails,default
"""

from __future__ import annotations

import asyncio

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


@rl_task
async def build_report(seconds: float) -> str:
    """A long task: kill its worker mid-run and watch another one finish it."""
    await asyncio.sleep(seconds)
    return f"report built in {seconds:g}s"
