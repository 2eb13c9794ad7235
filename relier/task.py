"""``Task``: a function registered with an App, and the ways to push it.

``task(*args)`` runs the function here and now; ``task.push``/``task.apush`` send it to
a worker. ``task.options(...)`` gives per-call options (queue, countdown, eta, expires,
priority, ...) with the same push methods.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, fields, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any, Generic, ParamSpec, TypeVar

from relier.errors import ConfigurationError
from relier.handle import TaskHandle
from relier.options import OptionError, check_names, check_push_options
from relier.protocol.rate import RateLimit
from relier.validation import ArgumentSpec

if TYPE_CHECKING:
    from relier.app import App
    from relier.context import TaskContext
    from relier.protocol.canvas import Signature

P = ParamSpec("P")
R = TypeVar("R")

SoftTimeoutHook = Callable[["TaskContext"], Awaitable[None]]
Upgrader = Callable[[list[Any], dict[str, Any]], tuple[list[Any], dict[str, Any]]]
#: One call of a bulk push: positional args and keyword args.
CallSpec = tuple[Sequence[Any], dict[str, Any]]


@dataclass(frozen=True, slots=True)
class PushOptions:
    """Options of one push; ``None`` means the task's own default."""

    queue: str | None = None
    countdown: float | None = None
    eta: datetime | None = None
    expires: datetime | float | None = None
    priority: int | None = None
    task_id: str | None = None
    idempotency_key: str | None = None
    soft_timeout: float | None = None
    hard_timeout: float | None = None
    #: Extra message headers (``relier_*`` names; Celery ignores unknown headers).
    headers: dict[str, Any] | None = None


PUSH_OPTION_NAMES = frozenset(f.name for f in fields(PushOptions))


def check_limits(name: str, soft: float | None, hard: float | None) -> None:
    """Raise ``ConfigurationError`` for a timeout that is not a positive number of seconds,
    or a soft timeout that would never fire before the hard one."""
    for label, value in (("soft_timeout", soft), ("hard_timeout", hard)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
            raise OptionError(f"task {name}: {label} must be a number of seconds, got "
                              f"{value!r} ({type(value).__name__})")
        if value is not None and not value > 0:
            raise ConfigurationError(f"task {name}: {label} must be > 0 seconds, got {value!r}")
    if soft is not None and hard is not None and soft >= hard:
        raise ConfigurationError(
            f"task {name}: soft_timeout ({soft:g}s) must be below hard_timeout ({hard:g}s)")


def check_retry_options(
    name: str, retries: int, backoff: float, backoff_max: float,
    retry_on: tuple[type[BaseException], ...],
) -> None:
    """Raise ``ConfigurationError`` for retry options that cannot work."""
    if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
        raise ConfigurationError(f"task {name}: retries must be an int >= 0, got {retries!r}")
    if not backoff >= 0 or not backoff_max >= 0:
        raise ConfigurationError(
            f"task {name}: retry_backoff and retry_backoff_max must be >= 0 seconds")
    if not isinstance(retry_on, tuple) or not all(
            isinstance(kind, type) and issubclass(kind, BaseException) for kind in retry_on):
        raise ConfigurationError(
            f"task {name}: retry_on must be a tuple of exception classes, got {retry_on!r}")


class Task(Generic[P, R]):
    """A registered task. Create it with ``@rl_task`` or ``@app.task``.

    Timeouts and retries: past ``soft_timeout`` seconds the hooks registered with
    :meth:`on_soft_timeout` run (the task goes on); at ``hard_timeout`` it is cancelled
    (a sync task's thread is abandoned) and fails with Celery's ``TimeLimitExceeded``.
    A failure whose exception is one of ``retry_on`` (or a hard timeout, while
    ``retry_on_timeout``) runs again, up to ``retries`` times, after a delay drawn
    uniformly from ``[0, min(retry_backoff_max, retry_backoff * 2**(n-1))]`` for retry
    ``n`` (exponential backoff with full jitter); ``raise relier.Retry(countdown=...)``
    asks for a retry from inside the task.
    """

    def __init__(
        self,
        app: App,
        fn: Callable[P, Awaitable[R]] | Callable[P, R],
        *,
        name: str | None = None,
        queue: str = "default",
        idempotent: bool = False,
        idempotency_ttl: int | None = None,
        soft_timeout: float | None = None,
        hard_timeout: float | None = None,
        retries: int = 0,
        retry_backoff: float = 1.0,
        retry_on: type[BaseException] | tuple[type[BaseException], ...] = (Exception,),
        retry_on_timeout: bool = True,
        retry_backoff_max: float = 600.0,
        version: int = 1,
        ignore_result: bool = False,
        rate_limit: str | None = None,
        max_queue_depth: int | None = None,
    ) -> None:
        self.app = app
        self.fn = fn
        self.name = name or f"{fn.__module__}.{fn.__qualname__}"
        self.queue = queue
        self.idempotent = idempotent
        self.idempotency_ttl = idempotency_ttl
        self.soft_timeout = soft_timeout
        self.hard_timeout = hard_timeout
        self.retries = retries
        self.retry_backoff = retry_backoff
        self.retry_on = (retry_on,) if isinstance(retry_on, type) else retry_on
        self.retry_on_timeout = retry_on_timeout
        self.retry_backoff_max = retry_backoff_max
        check_limits(self.name, soft_timeout, hard_timeout)
        check_retry_options(self.name, retries, retry_backoff, retry_backoff_max, self.retry_on)
        if isinstance(version, bool) or not isinstance(version, int) or version < 1:
            raise ConfigurationError(f"task {self.name}: version must be an int >= 1, "
                                     f"not {version!r}")
        self.version = version
        self.ignore_result = ignore_result
        self.rate_limit = rate_limit
        #: The parsed ``rate_limit`` (a bad one fails here, when the task is defined).
        self.rate = RateLimit.parse(rate_limit) if rate_limit is not None else None
        self.max_queue_depth = max_queue_depth
        self.is_async = inspect.iscoroutinefunction(fn)
        self.arguments = ArgumentSpec(fn, self.name)
        self.soft_timeout_hooks: list[SoftTimeoutHook] = []
        self.upgraders: dict[int, Upgrader] = {}
        self.__doc__ = fn.__doc__
        self.__wrapped__ = fn

    def __repr__(self) -> str:
        return f"<Task {self.name} queue={self.queue}>"

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> Awaitable[R] | R:
        """Run the function in this process, as a plain call."""
        return self.fn(*args, **kwargs)

    # -- pushing ---------------------------------------------------------------------

    def options(self, **options: Any) -> BoundTask[P, R]:
        """Per-call options: ``queue``, ``countdown``, ``eta``, ``expires``, ``priority``,
        ``task_id``, ``idempotency_key``, ``soft_timeout``, ``hard_timeout``."""
        check_names(f"{self.name}.options()", options, PUSH_OPTION_NAMES)
        bound = PushOptions(**options)
        check_push_options(f"{self.name}.options()", bound)
        check_limits(self.name, bound.soft_timeout or self.soft_timeout,
                     bound.hard_timeout or self.hard_timeout)
        return BoundTask(self, bound)

    def s(self, *args: Any, **kwargs: Any) -> Signature:
        """A signature for a canvas (``relier.chain/group/chord``); in a chain the parent's
        result is prepended to ``args``. ``.set(queue=..., countdown=...)`` adds options."""
        from relier.workflow import signature_of
        return signature_of(self, args, kwargs, immutable=False)

    def si(self, *args: Any, **kwargs: Any) -> Signature:
        """An immutable signature: it runs with exactly these arguments, ignoring the
        parent's result."""
        from relier.workflow import signature_of
        return signature_of(self, args, kwargs, immutable=True)

    def push(self, *args: P.args, **kwargs: P.kwargs) -> TaskHandle[R]:
        """Send the task to a worker from sync code; returns its handle at once."""
        return BoundTask(self, PushOptions()).push(*args, **kwargs)

    async def apush(self, *args: P.args, **kwargs: P.kwargs) -> TaskHandle[R]:
        """Send the task to a worker from async code; returns its handle at once."""
        return await BoundTask(self, PushOptions()).apush(*args, **kwargs)

    def push_many(self, calls: Iterable[CallSpec]) -> list[TaskHandle[R]]:
        """Send many calls in one pipelined round trip."""
        return BoundTask(self, PushOptions()).push_many(calls)

    async def apush_many(self, calls: Iterable[CallSpec]) -> list[TaskHandle[R]]:
        """Send many calls in one pipelined round trip, from async code."""
        return await BoundTask(self, PushOptions()).apush_many(calls)

    # -- hooks -----------------------------------------------------------------------

    def on_soft_timeout(self, hook: SoftTimeoutHook) -> SoftTimeoutHook:
        """Register ``async def hook(ctx)``, called when the task passes its soft timeout."""
        self.soft_timeout_hooks.append(hook)
        return hook

    def upgrade(self, from_version: int) -> Callable[[Upgrader], Upgrader]:
        """Register ``fn(args, kwargs) -> (args, kwargs)`` turning a payload written for
        ``from_version`` into one for ``from_version + 1``.

        A worker runs the upgraders of an older payload in order (1→2, 2→3, ...) on its
        JSON arguments, then validates the result against the current signature. A step
        without an upgrader passes the arguments through unchanged. Upgraders run on the
        event loop: keep them pure and quick. An upgrader that raises sends the message
        to the DLQ as ``payload_invalid``.
        """
        if isinstance(from_version, bool) or not isinstance(from_version, int) \
                or not 1 <= from_version < self.version:
            raise ConfigurationError(
                f"task {self.name} is version {self.version}: an upgrader can start from "
                f"versions 1 to {self.version - 1}, not {from_version!r}")
        if from_version in self.upgraders:
            raise ConfigurationError(
                f"task {self.name} already has an upgrader from version {from_version}")

        def register(fn: Upgrader) -> Upgrader:
            self.upgraders[from_version] = fn
            return fn

        return register


class BoundTask(Generic[P, R]):
    """A task with per-call options; push it like the task itself."""

    __slots__ = ("options", "task")

    def __init__(self, task: Task[P, R], options: PushOptions) -> None:
        self.task = task
        self.options = options

    def with_options(self, **options: Any) -> BoundTask[P, R]:
        """These options with more (or other) ones; checked like ``Task.options``."""
        where = f"{self.task.name}.options()"
        check_names(where, options, PUSH_OPTION_NAMES)
        bound = replace(self.options, **options)
        check_push_options(where, bound)
        return BoundTask(self.task, bound)

    def push(self, *args: P.args, **kwargs: P.kwargs) -> TaskHandle[R]:
        return self.task.app.producer.push(self.task, [(args, kwargs)], self.options)[0]

    async def apush(self, *args: P.args, **kwargs: P.kwargs) -> TaskHandle[R]:
        return (await self.task.app.producer.apush(self.task, [(args, kwargs)], self.options))[0]

    def push_many(self, calls: Iterable[CallSpec]) -> list[TaskHandle[R]]:
        return self.task.app.producer.push(self.task, list(calls), self.options)

    async def apush_many(self, calls: Iterable[CallSpec]) -> list[TaskHandle[R]]:
        return await self.task.app.producer.apush(self.task, list(calls), self.options)
