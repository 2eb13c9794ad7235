"""``@rl_task``: register a function as a task of the default App."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any, ParamSpec, TypeVar, overload

from relier.app import TaskDecorator
from relier.task import Task
from relier.tasks import app

P = ParamSpec("P")
R = TypeVar("R")


@overload
def rl_task(fn: Callable[P, Coroutine[Any, Any, R]], /) -> Task[P, R]: ...
@overload
def rl_task(fn: Callable[P, R], /) -> Task[P, R]: ...
@overload
def rl_task(fn: None = None, /, **options: Any) -> TaskDecorator: ...


def rl_task(fn: Any = None, /, **options: Any) -> Any:
    """Register a task with the default App: ``@rl_task`` or ``@rl_task(queue=...)``.

    ``async def`` tasks run on the worker's event loop; plain ``def`` tasks run in a
    worker thread. See :meth:`relier.App.task` for the options.
    """
    if fn is not None:
        return app.task(fn)
    return app.task(**options)
