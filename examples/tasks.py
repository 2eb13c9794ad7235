"""Example tasks: run `relier worker -A examples.tasks`, then push them from anywhere."""

from __future__ import annotations

import asyncio
import time

from relier.tasks.decorator import rl_task


@rl_task
async def add(x: int, y: int) -> int:
    """An async task: runs on the worker's event loop."""
    await asyncio.sleep(0.01)
    return x + y


@rl_task(queue="high_priority")
def resize_image(path: str, width: int) -> dict[str, object]:
    """A sync task: runs in one of the worker's threads."""
    time.sleep(0.05)
    return {"path": path, "width": width}


@rl_task
async def explode(reason: str) -> None:
    """A task that always fails: its error comes back to the caller as TaskFailed."""
    raise ValueError(reason)
