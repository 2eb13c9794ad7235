"""The result format of Celery's Redis backend.

A result is JSON stored at ``celery-task-meta-<id>`` and published on the channel of
the same name. Celery's ``AsyncResult.get()`` reads it, and Relier reads Celery's.
"""

from __future__ import annotations

import traceback as traceback_module
from datetime import UTC, datetime
from typing import Any, Final

import msgspec
from msgspec import UNSET, UnsetType

from relier.protocol import hostile

SUCCESS: Final = "SUCCESS"
FAILURE: Final = "FAILURE"
RETRY: Final = "RETRY"
REVOKED: Final = "REVOKED"
STARTED: Final = "STARTED"
PENDING: Final = "PENDING"
#: States after which a task will not change again.
READY_STATES: Final = frozenset({SUCCESS, FAILURE, REVOKED})
#: States whose ``result`` describes an exception.
EXCEPTION_STATES: Final = frozenset({FAILURE, RETRY, REVOKED})


class ResultMeta(msgspec.Struct, kw_only=True):
    """One stored result, fields in the order Celery writes them."""

    status: str
    result: Any = None
    traceback: str | None = None
    children: list[Any] = msgspec.field(default_factory=list)
    date_done: str | None = None
    # With ``result_extended`` (Celery's setting), what Celery's backend adds; omitted
    # (UNSET) otherwise. Typed loosely: another writer's values are not trusted.
    name: Any | UnsetType = UNSET
    args: Any | UnsetType = UNSET
    kwargs: Any | UnsetType = UNSET
    worker: Any | UnsetType = UNSET
    retries: Any | UnsetType = UNSET
    queue: Any | UnsetType = UNSET
    task_id: str
    #: Relier's own facts (Celery ignores unknown fields): the task's name, and seconds
    #: from taking the message to its outcome, so ``relier inspect task ID`` can show a
    #: finished task without ``result_extended``.
    relier_task: Any | UnsetType = UNSET
    relier_runtime: Any | UnsetType = UNSET

    @property
    def ready(self) -> bool:
        return self.status in READY_STATES

    @property
    def exception(self) -> tuple[str, str, list[Any]]:
        """``(exc_type, exc_module, exc_message)`` of an exception state."""
        value = self.result
        if isinstance(value, dict):
            message = value.get("exc_message", [])
            if not isinstance(message, list):
                message = [message]
            return (
                str(value.get("exc_type", "Exception")),
                str(value.get("exc_module", "builtins")),
                message,
            )
        return ("Exception", "builtins", [value])


_encoder: Final = msgspec.json.Encoder()
_decoder: Final = msgspec.json.Decoder(ResultMeta)


def _now_iso() -> str:
    return datetime.now(UTC).isoformat()


def success(task_id: str, value: Any) -> ResultMeta:
    return ResultMeta(status=SUCCESS, result=value, date_done=_now_iso(), task_id=task_id)


def exception_info(exc: BaseException) -> dict[str, Any]:
    """An exception as Celery stores it: its class, its module and its args."""
    cls = type(exc)
    return {
        "exc_type": cls.__qualname__,
        "exc_message": [_jsonable(a) for a in exc.args],
        "exc_module": cls.__module__,
    }


def _jsonable(value: Any) -> Any:
    try:
        _encoder.encode(value)
    except (TypeError, msgspec.EncodeError):
        return repr(value)
    return value


def failure(task_id: str, exc: BaseException, tb: str | None = None) -> ResultMeta:
    if tb is None:
        tb = "".join(traceback_module.format_exception(exc))
    return ResultMeta(
        status=FAILURE,
        result=exception_info(exc),
        traceback=tb,
        date_done=_now_iso(),
        task_id=task_id,
    )


def failure_from(
    task_id: str, exc_type: str, exc_module: str, message: list[Any], tb: str | None
) -> ResultMeta:
    """A FAILURE for an error that is not a live exception (a timeout, an unknown task)."""
    return ResultMeta(
        status=FAILURE,
        result={"exc_type": exc_type, "exc_message": message, "exc_module": exc_module},
        traceback=tb,
        date_done=_now_iso(),
        task_id=task_id,
    )


def revoked(task_id: str, reason: str) -> ResultMeta:
    """REVOKED the way a Celery worker writes it for an expired message."""
    return ResultMeta(
        status=REVOKED,
        result={
            "exc_type": "TaskRevokedError",
            "exc_message": [reason],
            "exc_module": "celery.exceptions",
        },
        date_done=_now_iso(),
        task_id=task_id,
    )


def custom_state(task_id: str, state: str, meta: Any) -> ResultMeta:
    """A running task's own state (``update_state``), as Celery stores one: not ready,
    so no ``date_done``; ``meta`` is the ``result``."""
    return ResultMeta(status=state, result=meta, task_id=task_id)


def extend(meta: ResultMeta, *, name: str, args: Any, kwargs: Any, worker: str, retries: int,
           queue: str) -> ResultMeta:
    """The fields Celery's backend writes with ``result_extended=True``."""
    meta.name, meta.args, meta.kwargs = name, args, kwargs
    meta.worker, meta.retries, meta.queue = worker, retries, queue
    return meta


def text_of(value: Any) -> str | None:
    """A loosely typed stored field as text, or None when absent or not a string."""
    return value if isinstance(value, str) else None


def encode(meta: ResultMeta) -> bytes:
    return _encoder.encode(meta)


def decode(raw: bytes | str) -> ResultMeta:
    """Decode a stored result; raises :class:`PayloadError` if it is not one."""
    return hostile.read(_decoder.decode, raw, "stored result")
