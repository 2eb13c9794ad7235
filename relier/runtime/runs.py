"""The tasks that run deliveries: one asyncio task each, all cancelled together.

An anyio task group would do, but anyio (4.1x) makes a ``TaskHandle`` for every task
it starts (a cancel scope and an event of its own, and their bookkeeping): several
times what creating the task costs, paid once per delivery. Here each run is a plain
asyncio task (with its own copy of the context, as every task has) inside one anyio
cancel scope of its own. Cancelling the runs is still anyio's cancellation: delivered
again at every ``await`` until the run ends, and kept out of shielded scopes (the
settle of a task that finished during shutdown).

What a task group guarantees, :class:`Runs` keeps: leaving its ``async with`` block
waits for every run to end (after cancelling them if the block is left by an error),
and an exception that escapes a run (the executor catches every ``Exception``, so only
a ``BaseException`` can) is raised again from there.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from contextvars import ContextVar
from types import TracebackType
from typing import Any

import anyio

log = logging.getLogger("relier.worker")

_scope: ContextVar[anyio.CancelScope | None] = ContextVar("relier_run_scope", default=None)


def run_scope() -> anyio.CancelScope | None:
    """The cancel scope of the run the caller is part of; None outside :class:`Runs`.

    A revoke with terminate cancels it (revoked.py) instead of a scope of its own
    around the task's call: one cancel scope per run, not two."""
    return _scope.get()


class Runs:
    """Starts runs as asyncio tasks; :meth:`cancel` cancels all of them, now and later."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[None]] = set()
        self._scopes: set[anyio.CancelScope] = set()
        self._cancelled = False
        self._escaped: BaseException | None = None
        self._none_left = asyncio.Event()

    def __len__(self) -> int:
        return len(self._tasks)

    def start(self, run: Coroutine[Any, Any, None], *, name: str) -> None:
        """Run ``run`` in a task of its own."""
        task = asyncio.get_running_loop().create_task(self._guarded(run), name=name)
        self._tasks.add(task)
        task.add_done_callback(self._ended)

    async def _guarded(self, run: Coroutine[Any, Any, None]) -> None:
        with anyio.CancelScope() as scope:
            if self._cancelled:
                scope.cancel()
            self._scopes.add(scope)
            _scope.set(scope)  # this task's own context: seen by this run alone
            try:
                await run
            finally:
                self._scopes.discard(scope)

    def _ended(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled():
            escaped = task.exception()
            if escaped is not None:
                log.error("a run ended with %r", escaped)
                if self._escaped is None:
                    self._escaped = escaped
        if not self._tasks:
            self._none_left.set()

    def cancel(self) -> None:
        """Cancel every run, and every run started from now on."""
        self._cancelled = True
        for scope in list(self._scopes):
            scope.cancel()

    async def __aenter__(self) -> Runs:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        if exc is not None:
            self.cancel()
        # Shielded: a host being cancelled still waits for its runs, as a task group does.
        with anyio.CancelScope(shield=True):
            while self._tasks:
                self._none_left = asyncio.Event()
                await self._none_left.wait()
        if exc is None and self._escaped is not None:
            raise self._escaped
