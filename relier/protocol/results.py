"""The result format of Celery's Redis backend.

A result is JSON stored at ``celery-task-meta-<id>`` and published on the channel of
the same name. Celery's ``AsyncResult.get()`` reads it, and Relier reads Celery's.
"""

from __future__ import annotations

import traceback as traceback_module
from datetime import UTC, datetime
from typing import Any, Final

import msgspec

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
    task_id: str

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


def encode(meta: ResultMeta) -> bytes:
    return _encoder.encode(meta)


def decode(raw: bytes | str) -> ResultMeta:
    """Decode a stored result; raises :class:`PayloadError` if it is not one."""
    return hostile.read(_decoder.decode, raw, "stored result")
