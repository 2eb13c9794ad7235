"""Calling a task function under its soft and hard timeouts.

The limits come from the message's ``timelimit`` header (``[hard, soft]``, written by a
Relier producer from the task's options or a per-call override, or by a Celery producer
from ``time_limit``/``soft_time_limit``), else from the task's own options. They are
counted from the moment the task starts on this worker.

* At the **soft** deadline the hooks registered with ``@task.on_soft_timeout`` run with the
  task's context, next to the task, which goes on. A hook that has started is allowed to
  finish even if the task returns meanwhile (within the hard deadline).
* At the **hard** deadline the stack of the task is captured (where it hangs), then the
  call is cancelled and :class:`HardTimeout` raised. An ``async def`` task is cancelled at
  its current ``await``. A ``def`` task's thread cannot be stopped: it is abandoned,
  counted by :class:`~relier.runtime.abandoned.AbandonedThreads`, and runs on unseen.

A task without limits is awaited directly, with no timer at all.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

import anyio

from relier.context import TaskContext, reset_current, set_current
from relier.protocol.message import TaskMessage
from relier.runtime import stacks
from relier.runtime.abandoned import AbandonedThreads, ThreadSlot
from relier.runtime.hooks import NO_TRACING, RunTracer
from relier.task import Task

log = logging.getLogger("relier.task")


@dataclass(frozen=True, slots=True)
class Limits:
    """Seconds from the start of a run: ``soft`` fires the hooks, ``hard`` cancels."""

    soft: float | None = None
    hard: float | None = None


def limits_for(task: Task[Any, Any], message: TaskMessage) -> Limits:
    """The message's limits (per call, or Celery's), falling back to the task's options.

    A soft limit at or past the hard one could never fire, so it is dropped.
    """
    hard = message.hard_timeout or task.hard_timeout
    soft = message.soft_timeout or task.soft_timeout
    if soft is not None and hard is not None and soft >= hard:
        soft = None
    return Limits(soft, hard)


class HardTimeout(Exception):
    """The task passed its hard timeout and was cancelled (or its thread abandoned)."""

    def __init__(self, limit: float, elapsed: float, stack: str) -> None:
        super().__init__(f"hard timeout of {limit:g}s exceeded (ran {elapsed:.3f}s)")
        self.limit = limit
        self.elapsed = elapsed
        #: Where the task was when its time ran out (a formatted stack).
        self.stack = stack


class Caller:
    """Runs task functions for one worker, under their limits, and counts the timeouts."""

    def __init__(self, threads: anyio.CapacityLimiter, abandoned: AbandonedThreads,
                 tracer: RunTracer = NO_TRACING) -> None:
        self._threads = threads
        self.abandoned = abandoned
        #: Where a soft timeout is noted on the run's span.
        self.tracer = tracer
        self.soft_timeouts = 0
        self.hard_timeouts = 0

    async def call(
        self, task: Task[Any, Any], args: list[Any], kwargs: dict[str, Any],
        context: TaskContext, limits: Limits,
    ) -> Any:
        """The task's return value; its exception; or :class:`HardTimeout`."""
        token = set_current(context)
        try:
            if task.is_async:
                coroutine = task.fn(*args, **kwargs)
                return await self._limited(task, context, limits, coroutine,
                                           partial(stacks.coroutine_stack, coroutine))
            slot = ThreadSlot()
            body = anyio.to_thread.run_sync(
                partial(slot.run, partial(task.fn, *args, **kwargs)),
                limiter=self._threads, abandon_on_cancel=True,
            )
            try:
                return await self._limited(task, context, limits, body,
                                           partial(_thread_stack, slot))
            except HardTimeout:
                self.abandoned.abandon(slot)
                raise
        finally:
            reset_current(token)

    async def _limited(
        self, task: Task[Any, Any], context: TaskContext, limits: Limits,
        body: Awaitable[Any], where: Callable[[], str],
    ) -> Any:
        if limits.soft is None and limits.hard is None:
            return await body
        run = _LimitedRun(self, task, context, limits, where)
        return await run.run(body)


def _thread_stack(slot: ThreadSlot) -> str:
    if slot.ident is None:
        return "(still waiting for a worker thread)"
    return stacks.thread_stack(slot.ident, task_only=True)


class _LimitedRun:
    """One call with its timers: the body and up to two watchers in one task group."""

    def __init__(
        self, caller: Caller, task: Task[Any, Any], context: TaskContext, limits: Limits,
        where: Callable[[], str],
    ) -> None:
        self._caller = caller
        self._task = task
        self._context = context
        self._limits = limits
        self._where = where
        self._started = time.monotonic()
        self._scope = anyio.CancelScope()
        self._body_done = False
        self._hooks_running = False
        self._timed_out_stack: str | None = None

    async def run(self, body: Awaitable[Any]) -> Any:
        error: Exception | None = None
        value: Any = None
        async with anyio.create_task_group() as group:
            self._scope = group.cancel_scope
            if self._limits.soft is not None:
                group.start_soon(self._soft, self._limits.soft, name="relier soft timeout")
            if self._limits.hard is not None:
                group.start_soon(self._hard, self._limits.hard, name="relier hard timeout")
            try:
                value = await body
            except Exception as exc:  # kept, and raised once the timers are settled
                error = exc
            self._body_done = True
            if not self._hooks_running:
                group.cancel_scope.cancel()
        if self._timed_out_stack is not None:
            assert self._limits.hard is not None
            self._caller.hard_timeouts += 1
            raise HardTimeout(self._limits.hard, time.monotonic() - self._started,
                              self._timed_out_stack)
        if error is not None:
            raise error
        return value

    async def _soft(self, soft: float) -> None:
        await anyio.sleep_until(self._started + soft)
        self._hooks_running = True
        self._caller.soft_timeouts += 1
        self._caller.tracer.event("relier.soft_timeout", {"relier.soft_timeout_s": soft})
        hooks = self._task.soft_timeout_hooks
        context = self._context  # a local, so the watchdog can name a hook that blocks
        log.warning("task %s[%s] passed its soft timeout of %gs (attempt %d); running %d "
                    "hook(s) (%d soft timeout(s) on this worker)",
                    self._context.name, self._context.id, soft, self._context.attempt,
                    len(hooks), self._caller.soft_timeouts)
        for hook in hooks:
            try:
                await hook(context)
            except Exception:
                log.exception("soft-timeout hook %s of task %s[%s] failed",
                              getattr(hook, "__qualname__", hook), self._context.name,
                              self._context.id)
        self._hooks_running = False
        if self._body_done:
            self._scope.cancel()  # the task returned while the hooks ran: stop the hard timer

    async def _hard(self, hard: float) -> None:
        await anyio.sleep_until(self._started + hard)
        if self._body_done:
            log.warning("task %s[%s]: its soft-timeout hook was cut short by the hard "
                        "timeout", self._context.name, self._context.id)
        else:
            # Captured before the cancellation unwinds the frames it shows.
            self._timed_out_stack = self._where()
        self._scope.cancel()
