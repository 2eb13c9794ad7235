"""Building pieces of the runtime in the test's own event loop, against the real test server.

The end-to-end tests run ``relier worker`` subprocesses; these helpers let a test drive one
component (settler, fetcher, executor, resurrector, orphan check) directly, with the same
Redis and the same scripts, and look at the keys it changed.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass

import anyio

from relier import App
from relier.runtime.capacity import Capacity
from relier.runtime.delivery import Delivery, Settler
from relier.runtime.executor import Executor
from relier.runtime.hooks import TaskObserver
from relier.store.broker import Broker

#: Every in-process wait is bounded: a component that hangs fails its test.
DEADLINE_S = 20.0


@dataclass
class Runtime:
    """An App bound to the test database, its Broker and a running Settler."""

    app: App
    broker: Broker
    settler: Settler
    worker_id: str

    async def take(self, queue: str, want: int = 1) -> list[Delivery]:
        """Fetch up to ``want`` messages as this worker would, as deliveries."""
        batch = await self.broker.fetch([queue], self.worker_id, want)
        return [Delivery(t.raw, t.queue, self.worker_id, self.settler) for t in batch]

    async def take_one(self, queue: str = "default") -> Delivery:
        taken = await self.take(queue)
        assert len(taken) == 1, f"expected one message in {queue!r}, found {len(taken)}"
        return taken[0]

    def executor(self, capacity: Capacity | None = None,
                 observers: Sequence[TaskObserver] = ()) -> Executor:
        """An executor for this worker (the caller takes a slot before each execute,
        as the fetcher does)."""
        capacity = capacity if capacity is not None else Capacity(10)
        return Executor(self.app, self.worker_id, capacity, capacity.limit,
                        observers=observers)


@asynccontextmanager
async def runtime(
    redis_url: str, app: App | None = None, worker_id: str = "inproc-worker"
) -> AsyncIterator[Runtime]:
    """A Runtime whose settler runs in a task group for the duration of the block."""
    app = app if app is not None else App(redis_url=redis_url)
    app.configure(redis_url=redis_url)
    broker = Broker(app.async_client())
    settler = Settler(broker)
    try:
        with anyio.fail_after(DEADLINE_S * 3):
            async with anyio.create_task_group() as tg:
                tg.start_soon(settler.run, name="test settler")
                yield Runtime(app, broker, settler, worker_id)
                tg.cancel_scope.cancel()
    finally:
        await broker.aclose()
        await app.aclose()
        app.close()


async def until(condition: Callable[[], object], what: str) -> None:
    """Poll ``condition()`` on the loop until it is true; fail after the deadline."""
    deadline = time.monotonic() + DEADLINE_S
    while not condition():
        assert time.monotonic() < deadline, f"timed out after {DEADLINE_S}s waiting for {what}"
        await anyio.sleep(0.02)
