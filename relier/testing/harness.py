"""A real Relier worker inside the test process, and ways to wait for it.

:class:`AsyncTestWorker` runs :class:`relier.runtime.worker.Worker` as a task on the
test's own event loop (async tests); :class:`SyncTestWorker` runs it on an event loop
in a background thread (plain ``def`` tests). Either way it is the production worker:
the same fetch, retries, timeouts, idempotency, rate limits, DLQ and results, on a
real Redis. Only what would end the test process is off (``in_process=True``): no
signal handlers, no watchdog kill, no ``os._exit``.

``drain()`` waits until the worker's queues hold nothing queued, nothing in flight and
nothing delayed that falls due before the drain's own deadline (a retry's backoff, a
short countdown, a rate-limited task); work due later is left alone.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Sequence
from typing import Final

import anyio

from relier.app import App
from relier.observability.telemetry import Telemetry
from relier.protocol.dead_letter import DeadLetter
from relier.protocol.queues import DEFAULT_QUEUES
from relier.protocol.results import ResultMeta
from relier.runtime.worker import Worker
from relier.testing import state

#: Seconds ``drain()`` waits by default.
DRAIN_TIMEOUT_S: Final = 30.0
#: Seconds between looks at Redis while draining.
POLL_S: Final = 0.02
#: Seconds a stopping worker gets to finish running tasks before they are cancelled.
STOP_GRACE_S: Final = 5.0
#: Seconds to wait for the worker to stop after that.
STOP_TIMEOUT_S: Final = 20.0


class DrainTimeout(AssertionError):
    """The worker still had work when ``drain()``'s deadline passed."""


def queues_of(app: App) -> list[str]:
    """Every queue a task of ``app`` uses, then Relier's defaults (``re-queue`` too)."""
    return list(dict.fromkeys([*(t.queue for t in app.tasks.values()), *DEFAULT_QUEUES]))


class _TestWorker:
    """What both faces share: the worker, its queues, reading the DLQ and results."""

    def __init__(self, app: App, queues: Sequence[str] | None, concurrency: int) -> None:
        self.app = app
        self.worker = Worker(app, queues or queues_of(app), concurrency, telemetry=Telemetry,
                             in_process=True)

    @property
    def queues(self) -> list[str]:
        return self.worker.queues

    def dead_letters(self, *, task: str | None = None,
                     reason: str | None = None) -> list[DeadLetter]:
        """DLQ entries (newest first), optionally of one task name or reason."""
        return state.dead_letters(self.app.sync_client(), task=task, reason=reason)

    def result(self, task_id: str) -> ResultMeta | None:
        """The stored result of ``task_id`` (``status``, ``result``, ``traceback``), or None."""
        return state.stored_result(self.app.sync_client(), task_id=task_id)

    def _timed_out(self, left: state.Pending, timeout: float) -> DrainTimeout:
        return DrainTimeout(f"the relier worker did not drain in {timeout:g}s: "
                            f"{left.describe()} on {', '.join(self.queues)}")


class AsyncTestWorker(_TestWorker):
    """The worker as a task on the running event loop; ``await drain()``."""

    def __init__(self, app: App, queues: Sequence[str] | None = None,
                 concurrency: int = 10) -> None:
        super().__init__(app, queues, concurrency)
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Start consuming on the running loop (returns at once)."""
        self._task = asyncio.get_running_loop().create_task(
            self.worker.run(handle_signals=False), name="relier test worker")

    async def drain(self, timeout: float = DRAIN_TIMEOUT_S) -> None:
        """Wait until nothing is queued, in flight, or delayed and due within ``timeout``."""
        deadline = time.monotonic() + timeout
        due_before_ms = int((time.time() + timeout) * 1000)
        client = self.app.broker().client
        while True:
            self._raise_if_dead()
            left = await state.apending(client, queues=self.queues, worker_id=self.worker.id,
                                        due_before_ms=due_before_ms)
            if not left.total:
                return
            if time.monotonic() > deadline:
                raise self._timed_out(left, timeout)
            await anyio.sleep(POLL_S)

    async def stop(self) -> None:
        """Stop as SIGTERM would (running tasks get a short grace, then their messages go
        back to their queues); raises if the worker had failed."""
        if self._task is None:
            return
        self.worker.stop()
        done, _ = await asyncio.wait([self._task], timeout=STOP_GRACE_S)
        if not done:
            self.worker.stop()  # the second request ends the grace period
            await asyncio.wait_for(self._task, STOP_TIMEOUT_S)
        task, self._task = self._task, None
        task.result()

    def _raise_if_dead(self) -> None:
        if self._task is not None and self._task.done():
            self._task.result()  # its exception, if it failed
            raise RuntimeError("the relier test worker stopped")


class SyncTestWorker(_TestWorker):
    """The worker on an event loop in a background thread; ``drain()`` blocks."""

    def __init__(self, app: App, queues: Sequence[str] | None = None,
                 concurrency: int = 10) -> None:
        super().__init__(app, queues, concurrency)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._started = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._main, name="relier test worker",
                                        daemon=True)

    def start(self) -> None:
        """Start the worker's thread; returns once its loop runs."""
        self._thread.start()
        self._started.wait(STOP_TIMEOUT_S)

    def drain(self, timeout: float = DRAIN_TIMEOUT_S) -> None:
        """Block until nothing is queued, in flight, or delayed and due within ``timeout``."""
        deadline = time.monotonic() + timeout
        due_before_ms = int((time.time() + timeout) * 1000)
        client = self.app.sync_client()
        while True:
            self._raise_if_dead()
            left = state.pending(client, queues=self.queues, worker_id=self.worker.id,
                                 due_before_ms=due_before_ms)
            if not left.total:
                return
            if time.monotonic() > deadline:
                raise self._timed_out(left, timeout)
            time.sleep(POLL_S)

    def stop(self) -> None:
        """Stop as SIGTERM would; raises if the worker had failed."""
        if self._loop is None or not self._thread.is_alive():
            self._raise_error()
            return
        self._loop.call_soon_threadsafe(self.worker.stop)
        self._thread.join(STOP_GRACE_S)
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(self.worker.stop)  # ends the grace period
            self._thread.join(STOP_TIMEOUT_S)
        if self._thread.is_alive():
            raise RuntimeError(f"the relier test worker did not stop in {STOP_TIMEOUT_S:g}s")
        self._raise_error()

    def _main(self) -> None:
        try:
            anyio.run(self._run)
        except BaseException as exc:  # handed to the test thread by stop()/drain()
            self._error = exc
        finally:
            self._started.set()

    async def _run(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._started.set()
        try:
            await self.worker.run(handle_signals=False)
        finally:
            await self.app.aclose()  # this loop's clients, if the tasks pushed

    def _raise_if_dead(self) -> None:
        self._raise_error()
        if self._started.is_set() and not self._thread.is_alive():
            raise RuntimeError("the relier test worker stopped")

    def _raise_error(self) -> None:
        if self._error is not None:
            error, self._error = self._error, None
            raise error
