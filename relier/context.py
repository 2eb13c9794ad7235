"""What a running task can learn about itself: ``relier.current_task()``."""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, Protocol


class StateReporter(Protocol):
    """Stores a running task's own state (the worker provides one per run)."""

    def report(self, state: str, meta: Any) -> bool: ...

    async def areport(self, state: str, meta: Any) -> bool: ...


@dataclass(frozen=True, slots=True)
class TaskContext:
    """The running task's identity and delivery facts.

    ``attempt`` counts runs that ended in a retry, plus one (Celery's ``retries`` + 1).
    ``resurrections`` counts how often a dead worker's copy was recovered by Phoenix.
    Pass ``idempotency_key`` and ``attempt`` to a downstream API as a fencing token.
    """

    id: str
    name: str
    queue: str
    attempt: int
    resurrections: int
    idempotency_key: str | None
    worker_id: str
    reporter: StateReporter | None = field(default=None, repr=False, compare=False)

    def update_state(self, state: str = "PROGRESS", meta: Any = None) -> bool:
        """Store a custom state and its ``meta`` while the task runs, as Celery's
        ``self.update_state`` does (``handle.state``/``handle.info`` and Celery's
        ``AsyncResult`` see it). One blocking round trip: in an ``async def`` task prefer
        ``await ctx.aupdate_state(...)``. False when a final state is already stored (the
        task was revoked). ``ValueError`` for a final state name, ``TypeError`` for a
        ``meta`` that is not JSON-serialisable."""
        return self._reporter().report(state, meta)

    async def aupdate_state(self, state: str = "PROGRESS", meta: Any = None) -> bool:
        """:meth:`update_state` without blocking the event loop."""
        return await self._reporter().areport(state, meta)

    def _reporter(self) -> StateReporter:
        if self.reporter is None:
            raise RuntimeError("update_state needs a task run by a Relier worker")
        return self.reporter


_current: ContextVar[TaskContext | None] = ContextVar("relier_current_task", default=None)


def current_task() -> TaskContext:
    """The context of the task running in this coroutine or thread.

    Raises ``RuntimeError`` outside a task.
    """
    context = _current.get()
    if context is None:
        raise RuntimeError("relier.current_task() called outside a running task")
    return context


def set_current(context: TaskContext | None) -> object:
    """Enter a task's context; returns the token for :func:`reset_current`."""
    return _current.set(context)


def reset_current(token: object) -> None:
    _current.reset(token)  # type: ignore[arg-type]
