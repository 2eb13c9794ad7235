"""What a running task can learn about itself: ``relier.current_task()``."""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass


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
