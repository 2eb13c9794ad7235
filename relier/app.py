"""``App``: settings, the task registry and the Redis clients, for producers and workers.

An App holds no global state: two Apps with two Redis URLs live side by side. The
default App is ``relier.tasks.app``; ``@rl_task`` registers with it.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable, Coroutine
from typing import Any, ParamSpec, Protocol, TypeVar, overload

from relier.errors import ConfigurationError, UnknownTask
from relier.handle import TaskHandle
from relier.lock import Lock
from relier.options import check_names
from relier.producer import Producer
from relier.protocol.declaration import Declaration
from relier.schedules import ScheduleSpec, declaration
from relier.settings import Settings
from relier.store import connections
from relier.store.broker import Broker
from relier.store.clients import AsyncClient, SyncClient
from relier.task import Task

P = ParamSpec("P")
R = TypeVar("R")

#: The keywords ``@app.task(...)`` takes: those of ``Task`` after the function.
TASK_OPTION_NAMES = frozenset(list(inspect.signature(Task).parameters)[2:])
#: Seconds to wait for a TCP connection before calling Redis unreachable.
CONNECT_TIMEOUT_S = 5.0


class TaskDecorator(Protocol):
    """What ``@app.task(...)`` returns: a decorator keeping the function's types."""

    @overload
    def __call__(self, fn: Callable[P, Coroutine[Any, Any, R]], /) -> Task[P, R]: ...
    @overload
    def __call__(self, fn: Callable[P, R], /) -> Task[P, R]: ...


class App:
    """A Relier application: where tasks are registered and how Redis is reached.

    Keywords are settings (see :class:`relier.settings.Settings`); each one can also
    come from its ``RELIER_<NAME>`` environment variable.
    """

    def __init__(self, redis_url: str | None = None, **settings: Any) -> None:
        self._overrides: dict[str, Any] = {"redis_url": redis_url, **settings}
        self._settings: Settings | None = None
        self.tasks: dict[str, Task[Any, Any]] = {}
        #: Periodic schedules declared in this App's code, by name.
        self.schedules: dict[str, Declaration] = {}
        self.producer = Producer(self)
        self._broker: Broker | None = None
        self._broker_loop: asyncio.AbstractEventLoop | None = None
        self._sync: SyncClient | None = None

    @property
    def settings(self) -> Settings:
        """The settings, read from keywords and the environment on first use."""
        if self._settings is None:
            self._settings = Settings.load(self._overrides)
        return self._settings

    def configure(self, **settings: Any) -> None:
        """Change settings before first use (the CLI's ``--redis-url`` does this)."""
        self._overrides.update({k: v for k, v in settings.items() if v is not None})
        self._settings = None
        self._broker = None
        self._sync = None
        self.producer = Producer(self)  # a new Redis has not heard of our queues yet

    # -- registry --------------------------------------------------------------------

    @overload
    def task(self, fn: Callable[P, Coroutine[Any, Any, R]], /) -> Task[P, R]: ...
    @overload
    def task(self, fn: Callable[P, R], /) -> Task[P, R]: ...
    @overload
    def task(self, fn: None = None, /, **options: Any) -> TaskDecorator: ...

    def task(self, fn: Any = None, /, **options: Any) -> Any:
        """Register a function as a task: ``@app.task`` or ``@app.task(queue=...)``.

        Options are those of :class:`relier.task.Task`: ``name``, ``queue``,
        ``idempotent``, ``idempotency_ttl``, ``soft_timeout``, ``hard_timeout``,
        ``retries``, ``retry_backoff``, ``retry_backoff_max``, ``retry_on``,
        ``retry_on_timeout``, ``version``, ``ignore_result``,
        ``rate_limit``, ``max_queue_depth``; and ``schedule`` (a :func:`relier.cron` or
        :func:`relier.every`, or a list of them) to run it periodically.
        """
        schedule = options.pop("schedule", None)
        specs = schedule if isinstance(schedule, list | tuple) else [schedule]

        check_names("task options", options, TASK_OPTION_NAMES)

        def register(function: Callable[..., Any]) -> Task[Any, Any]:
            task: Task[Any, Any] = Task(self, function, **options)
            self.tasks[task.name] = task
            for spec in filter(None, specs):
                self.schedule(task, spec)
            return task

        return register(fn) if fn is not None else register

    def schedule(
        self, task: Task[Any, Any], spec: ScheduleSpec, *, name: str | None = None
    ) -> Declaration:
        """Run ``task`` on ``spec`` (:func:`relier.cron`/:func:`relier.every`) too.

        ``name`` (else the spec's ``name=``, else the task's name) identifies the schedule
        in Redis; give one per schedule when a task has several. Raises
        ``ConfigurationError`` for a name already used in this App by another schedule.
        """
        declared = declaration(task, spec, name)
        if self.schedules.get(declared.name) == declared:
            return declared  # the same module imported twice declares nothing new
        if declared.name in self.schedules:
            raise ConfigurationError(
                f"schedule name {declared.name!r} is already used; give each schedule of "
                f"task {task.name} its own name= (relier.cron(..., name=...))")
        self.schedules[declared.name] = declared
        return declared

    def get_task(self, name: str) -> Task[Any, Any]:
        try:
            return self.tasks[name]
        except KeyError:
            raise UnknownTask(f"no task named {name!r} is registered") from None

    def result(self, task_id: str) -> TaskHandle[Any]:
        """A handle for any task id, as Celery's ``AsyncResult(id)``: a web app returns
        ``h.id`` to its client and, in a later request, reads ``app.result(id).state``,
        ``.info`` or ``.result(timeout)``. Nothing is read until asked; an id nobody
        pushed is simply ``PENDING``."""
        return TaskHandle(self, task_id)

    def lock(
        self, name: str, ttl: float, *, timeout: float | None = None, holder: str | None = None
    ) -> Lock:
        """A named distributed lock on this App's Redis, with a fencing token.

        ``async with app.lock("nightly-report", ttl=30) as lock:`` (or ``with``) holds it
        for at most ``ttl`` seconds unless extended; ``lock.token`` grows with every
        acquisition. ``timeout``: seconds to wait for it (``None`` waits for ever, ``0``
        tries once). ``holder``: who holds it, as shown in its value (default: random).
        See :class:`relier.lock.Lock`.
        """
        return Lock(self, name, ttl, timeout=timeout, holder=holder)

    # -- clients ---------------------------------------------------------------------

    def broker(self) -> Broker:
        """The async broker for the running event loop (one per loop, made on first use)."""
        loop = asyncio.get_running_loop()
        if self._broker is None or self._broker_loop is not loop:
            self._broker = Broker(self.async_client())
            self._broker_loop = loop
        return self._broker

    def async_client(self, **options: Any) -> AsyncClient:
        """A new async Redis client for this App's URL (a Sentinel URL's current master)."""
        return connections.async_client(
            self.settings.redis_url,
            socket_connect_timeout=CONNECT_TIMEOUT_S,
            socket_keepalive=True,
            **options,
        )

    def sync_client(self) -> SyncClient:
        """The blocking Redis client used by ``push`` and ``result``."""
        if self._sync is None:
            self._sync = connections.sync_client(
                self.settings.redis_url,
                socket_connect_timeout=CONNECT_TIMEOUT_S,
                socket_keepalive=True,
            )
        return self._sync

    async def aclose(self) -> None:
        """Close the async connection pool of the running loop."""
        if self._broker is not None:
            await self._broker.aclose()
            self._broker = None

    def close(self) -> None:
        """Close the blocking connection pool."""
        if self._sync is not None:
            self._sync.close()
            self._sync = None
