"""Errors a caller can catch. Each one says what went wrong and what to do next."""

from __future__ import annotations

from typing import Final

#: Reasons a message lands in the dead-letter queue.
DLQ_REASONS: Final = frozenset(
    {
        "hard_timeout",
        "poison",
        "payload_invalid",
        "unknown_task",
        "version_too_new",
        "exception",
        "not_json",
        "expired",
        "canvas_unsupported",
    }
)


class RelierError(Exception):
    """Base of every error Relier raises on purpose."""


class ConfigurationError(RelierError):
    """A setting, an ``-A`` target or a task definition is wrong."""


class BrokerUnavailable(RelierError):
    """Redis cannot be reached; the message names the URL (without its password)."""

    def __init__(self, url: str, cause: BaseException) -> None:
        super().__init__(f"cannot reach Redis at {url}: {cause}")
        self.url = url


class PayloadError(RelierError):
    """A message or an argument list that cannot be run.

    ``reason`` is the DLQ reason it maps to (``not_json`` or ``payload_invalid``).
    """

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


class ArgumentError(PayloadError, TypeError):
    """Arguments that do not match the task's signature or type hints.

    Raised by the producer before anything is enqueued; it names the argument.
    """

    def __init__(self, detail: str) -> None:
        super().__init__("payload_invalid", detail)


class UnknownTask(RelierError):
    """No task of that name is registered in this App."""


class PoisonTask(RelierError):
    """Stored as the result of a task quarantined for killing its workers repeatedly."""


class AdmissionRejectedError(RelierError):
    """The queue is at its depth limit (or Redis near its memory limit); nothing was
    enqueued.

    ``retry_after`` is a suggested wait in seconds, estimated from the queue's recent
    drain rate. ``reason`` is ``"depth"`` or ``"memory"``.
    """

    def __init__(
        self, queue: str, depth: int, limit: int, retry_after: float, *, reason: str = "depth"
    ) -> None:
        if reason == "memory":
            text = f"Redis is near its maxmemory; queue {queue!r} refused new work"
        else:
            text = f"queue {queue!r} is full ({depth}/{limit})"
        super().__init__(f"{text}; retry after {retry_after:.1f}s")
        self.queue = queue
        self.depth = depth
        self.limit = limit
        self.retry_after = retry_after
        self.reason = reason


class ReplicationTimeout(RelierError, TimeoutError):
    """A push reached the master, but fewer replicas than ``replica_acks`` confirmed it
    within ``replica_ack_timeout``: the tasks are queued, yet a failover now could lose
    them. Pushing again is safe for an idempotent call (``idempotency_key=``)."""

    def __init__(self, task_ids: list[str], wanted: int, confirmed: int,
                 timeout: float) -> None:
        super().__init__(
            f"{len(task_ids)} task(s) queued but confirmed by {confirmed} of {wanted} "
            f"replica(s) within {timeout}s: a failover now could lose them (first id "
            f"{task_ids[0] if task_ids else '-'}; push again with an idempotency key to be "
            "sure)")
        self.task_ids = task_ids
        self.wanted = wanted
        self.confirmed = confirmed
        self.timeout = timeout


class ResultTimeout(RelierError, TimeoutError):
    """No result arrived within the timeout. The task may still run later."""

    def __init__(self, task_id: str, timeout: float) -> None:
        super().__init__(f"no result for task {task_id} within {timeout}s; it may still "
                         f"run later (`relier inspect task {task_id}` says where it is)")
        self.task_id = task_id
        self.timeout = timeout


class Retry(RelierError):
    """Raise inside a task to run it again later: ``raise relier.Retry(countdown=30)``.

    The message goes back through its queue's delayed set (in Redis, not in the worker's
    memory) with Celery's ``retries`` header incremented. ``countdown`` is the delay in
    seconds; without it the task's ``retry_backoff`` decides. Each Retry counts against
    the task's ``retries``, or against ``max_retries`` when given (as with Celery's
    ``self.retry(max_retries=...)``, for a task declared without ``retries``): with none
    left the task is dead-lettered (reason ``exception``), and ``exc``, when given, is the
    error stored as its failure.
    """

    def __init__(
        self,
        countdown: float | None = None,
        exc: BaseException | None = None,
        *,
        max_retries: int | None = None,
    ) -> None:
        if countdown is not None and not countdown >= 0:
            raise ValueError(f"Retry countdown must be >= 0 seconds, got {countdown!r}")
        if max_retries is not None and max_retries < 0:
            raise ValueError(f"Retry max_retries must be >= 0, got {max_retries!r}")
        self.max_retries = max_retries
        when = "with backoff" if countdown is None else f"in {countdown:g}s"
        super().__init__(f"retry {when}" + (f": {exc!r}" if exc is not None else ""))
        self.countdown = countdown
        self.exc = exc


class TaskFailed(RelierError):
    """The task raised on the worker (or was revoked); the remote error is kept.

    ``exc_type`` and ``exc_module`` name the remote exception class, ``exc_message`` holds
    its arguments and ``remote_traceback`` the worker's formatted traceback.
    """

    def __init__(
        self,
        task_id: str,
        status: str,
        exc_type: str,
        exc_module: str,
        exc_message: list[object],
        remote_traceback: str | None,
    ) -> None:
        args_text = ", ".join(repr(a) for a in exc_message)
        super().__init__(f"task {task_id} {status}: {exc_module}.{exc_type}({args_text})")
        self.task_id = task_id
        self.status = status
        self.exc_type = exc_type
        self.exc_module = exc_module
        self.exc_message = exc_message
        self.remote_traceback = remote_traceback


class LockTimeout(RelierError, TimeoutError):
    """``app.lock(...)`` could not be taken within its ``timeout``; someone else holds it."""

    def __init__(self, name: str, timeout: float) -> None:
        super().__init__(f"lock {name!r} is held by someone else; gave up after {timeout}s")
        self.name = name
        self.timeout = timeout


class LockLost(RelierError):
    """The lock's lease ran out (and maybe another holder took it) before this holder
    released or extended it: the work done under it may have overlapped with another's.
    """

    def __init__(self, name: str, token: int) -> None:
        super().__init__(f"lock {name!r} (fencing token {token}) was lost: its lease expired "
                         "before it was released or extended")
        self.name = name
        self.token = token
