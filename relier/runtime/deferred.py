"""Rolling-deploy hand-off: deferred messages go to a worker that can run them.

A worker that meets a task name it does not know, or a payload newer than its handler,
parks the message in its queue's deferred set until the end of ``defer_window``
(executor.py). It never sees it again before then. Every worker looks through the
deferred sets of its queues at start and then every :data:`POLL_S`, and takes, straight
into its own processing list, what it can run: so a new release's first worker runs the
payloads the old ones deferred within a poll of starting, however many old workers keep
fetching. What no worker takes before its window ends is moved back to the queue by the
pump and dead-lettered by the next worker that still cannot run it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Final

import anyio

from relier.app import App
from relier.errors import PayloadError
from relier.protocol import message as wire
from relier.runtime import versioning
from relier.runtime.capacity import Capacity
from relier.runtime.intake import Intake
from relier.store import lanes
from relier.store.broker import REDIS_ERRORS, Broker

log = logging.getLogger("relier.worker")

#: Seconds between looks at the deferred sets.
POLL_S: Final = 0.5
#: Deferred messages read per queue per look; the next look starts where this one ended.
PAGE: Final = 200


def can_run(app: App, raw: bytes) -> tuple[bool, str]:
    """Whether this worker has the task and a version at least the payload's; and the
    task id to fence it under. Bytes that do not decode are left where they are."""
    try:
        message = wire.decode(raw, max_bytes=app.settings.max_message_bytes)
    except Exception:  # hostile bytes: the window's end sends them to the DLQ
        return False, ""
    task = app.tasks.get(message.task)
    if task is None:
        return False, ""
    try:
        fits = versioning.payload_version(message) <= task.version
    except PayloadError:
        fits = True  # not a deferral matter: the executor dead-letters it with the reason
    task_id = message.headers.get("id")
    return fits, task_id if isinstance(task_id, str) else ""


class DeferredPuller:
    """Takes the deferred messages of ``queues`` that this worker can run."""

    def __init__(
        self, app: App, broker: Broker, queues: Sequence[str], worker_id: str,
        capacity: Capacity, intake: Intake, deliver: Callable[[bytes, str], None],
    ) -> None:
        self._app = app
        self._broker = broker
        self._queues = list(queues)
        self._worker_id = worker_id
        self._capacity = capacity
        self._intake = intake
        self._deliver = deliver
        self._start = dict.fromkeys(self._queues, 0)

    async def run(self) -> None:
        while True:
            await self._intake.wait_open()
            try:
                with self._intake.taking_now():
                    await self.pull()
            except REDIS_ERRORS as exc:
                log.debug("deferred pull failed: %s", exc)
            await anyio.sleep(POLL_S)

    async def pull(self) -> int:
        """One look at every queue's deferred set; returns how many were taken."""
        taken = 0
        for queue in self._queues:
            if self._capacity.free <= 0 or not self._intake.is_open:
                break
            taken += await self._pull_queue(queue)
        return taken

    async def _pull_queue(self, queue: str) -> int:
        page = await lanes.deferred_page(self._broker, queue=queue,
                                              start=self._start[queue], count=PAGE)
        self._start[queue] = self._start[queue] + len(page) if len(page) == PAGE else 0
        taken = 0
        for raw in page:
            if self._capacity.free <= 0:
                break
            fits, task_id = can_run(self._app, raw)
            if fits and await self._take(queue, raw, task_id):
                taken += 1
        return taken

    async def _take(self, queue: str, raw: bytes, task_id: str) -> bool:
        if not await lanes.take_deferred(self._broker, queue=queue,
                                         worker_id=self._worker_id, raw=raw):
            return False
        log.info("took deferred task %s from %r: this worker can run it", task_id, queue)
        self._deliver(raw, queue)
        return True
