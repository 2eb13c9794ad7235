"""How a failed run ends: tried again later, or final.

A failure is retried while the message's Celery ``retries`` header is below the task's
``retries`` and the failure qualifies: ``raise relier.Retry(...)`` always does, a hard
timeout does while the task's ``retry_on_timeout`` holds, any other exception when it is
one of ``retry_on``. The next attempt is the same message with ``retries`` incremented,
its ``eta`` set and ``parent_id`` pointing at itself (what a Celery worker republishes);
the executor parks it in the queue's delayed set, never in memory.

The delay is ``Retry(countdown=...)`` when given, else exponential backoff with full
jitter: retry ``n`` waits a uniform draw from ``[0, min(cap, base * 2**(n-1))]``.

The result stored for a failure reads in Celery as Celery would write it: a hard timeout
as ``billiard.exceptions.TimeLimitExceeded``, exhausted ``Retry`` requests as
``celery.exceptions.MaxRetriesExceededError`` (or the error the Retry carried), and a
pending retry as state ``RETRY``.
"""

from __future__ import annotations

import dataclasses
import random
import traceback
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Final

import msgspec

from relier.errors import Retry
from relier.protocol import results
from relier.protocol.message import TaskMessage
from relier.protocol.results import ResultMeta
from relier.runtime.deadlines import HardTimeout
from relier.task import Task

#: Doublings past this add nothing (any sane cap is reached long before) and would
#: overflow a float.
MAX_DOUBLINGS: Final = 60


def backoff_delay(
    retry_number: int, base_s: float, cap_s: float,
    draw: Callable[[float, float], float] = random.uniform,
) -> float:
    """Seconds before retry ``retry_number`` (1 for the first): full jitter under a cap."""
    ceiling = min(cap_s, base_s * 2.0 ** min(max(retry_number - 1, 0), MAX_DOUBLINGS))
    return draw(0.0, ceiling)


def backoff_ceiling(retry_number: int, base_s: float, cap_s: float) -> float:
    """The longest delay :func:`backoff_delay` can draw for that retry."""
    return backoff_delay(retry_number, base_s, cap_s, draw=lambda _low, high: high)


def retry_delay(task: Task[Any, Any], message: TaskMessage, error: BaseException) -> float | None:
    """Seconds until the next attempt, or None when this failure is final."""
    limit = task.retries
    if isinstance(error, Retry) and error.max_retries is not None:
        limit = error.max_retries
    if message.retries >= limit:
        return None
    if isinstance(error, Retry):
        if error.countdown is not None:
            return error.countdown
    elif isinstance(error, HardTimeout):
        if not task.retry_on_timeout:
            return None
    elif not isinstance(error, task.retry_on):
        return None
    return backoff_delay(message.retries + 1, task.retry_backoff, task.retry_backoff_max)


def next_attempt(message: TaskMessage, delay_s: float, now: float) -> TaskMessage:
    """The message of the next attempt (the given one is left as it is)."""
    return dataclasses.replace(
        message,
        retries=message.retries + 1,
        eta=datetime.fromtimestamp(now + delay_s, UTC),
        headers={**message.headers, "parent_id": message.id},
    )


def traceback_of(error: BaseException) -> str:
    """What the DLQ entry and the result keep: where a timed-out task hung, else the
    exception's own traceback."""
    if isinstance(error, HardTimeout):
        return error.stack
    return "".join(traceback.format_exception(error))


def describe(error: BaseException) -> str:
    """One line for the DLQ entry's ``error`` field."""
    if isinstance(error, HardTimeout):
        return str(error)
    if isinstance(error, Retry) and error.exc is not None:
        return repr(error.exc)
    return repr(error)


def failure_result(message: TaskMessage, error: BaseException, tb: str) -> ResultMeta:
    """The ``FAILURE`` result Celery's ``AsyncResult`` reads for this error."""
    if isinstance(error, HardTimeout):
        # What a Celery worker stores when its pool kills a task at time_limit.
        return results.failure_from(message.id, "TimeLimitExceeded", "billiard.exceptions",
                                    [error.limit], tb)
    if isinstance(error, Retry):
        if error.exc is not None:
            return results.failure(message.id, error.exc, tb)
        return results.failure_from(
            message.id, "MaxRetriesExceededError", "celery.exceptions",
            [f"Can't retry {message.task}[{message.id}]: no retries left "
             f"({message.retries} used)"], tb)
    return results.failure(message.id, error, tb)


def retrying_result(message: TaskMessage, error: BaseException, tb: str) -> ResultMeta:
    """The ``RETRY`` state Celery writes while a retry is pending (not a final state)."""
    if isinstance(error, Retry) and error.exc is None:
        meta = results.failure_from(message.id, "Retry", "celery.exceptions", [str(error)], tb)
    else:
        meta = failure_result(message, error, tb)
    return msgspec.structs.replace(meta, status=results.RETRY, date_done=None)
