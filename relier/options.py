"""Checking the options of a task and of one push: unknown names get a "did you mean",
values of the wrong type or range get a sentence naming the option, the value and what
it should be, before anything is sent.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any, Final

from relier.errors import ConfigurationError

if TYPE_CHECKING:
    from relier.task import PushOptions

#: Priorities a Redis transport honours (kombu's buckets cover 0-9).
PRIORITY_RANGE: Final = range(0, 10)


class OptionError(ConfigurationError, TypeError):
    """An unknown option, or an option value of the wrong type or range."""


def did_you_mean(name: str, known: Iterable[str]) -> str:
    """`` (did you mean 'countdown'?)`` for a close known name, else ``""``."""
    close = difflib.get_close_matches(name, list(known), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def check_names(where: str, given: Mapping[str, Any], known: Iterable[str]) -> None:
    """Raise ``OptionError`` naming the first unknown keyword, with a suggestion."""
    allowed = sorted(known)
    for name in given:
        if name not in allowed:
            raise OptionError(f"{where}: unknown option {name!r}{did_you_mean(name, allowed)}; "
                              f"known options: {', '.join(allowed)}")


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _seconds(where: str, label: str, value: object, *, zero_ok: bool) -> None:
    if value is None:
        return
    if not _is_number(value):
        raise OptionError(f"{where}: {label} must be a number of seconds, got {value!r} "
                          f"({type(value).__name__})")
    assert isinstance(value, int | float)
    if value < 0 or (value == 0 and not zero_ok) or value != value:
        bound = ">= 0" if zero_ok else "> 0"
        raise OptionError(f"{where}: {label} must be {bound} seconds, got {value!r}")


def check_push_options(where: str, options: PushOptions) -> None:
    """Raise ``OptionError`` for a push option of the wrong type or out of range."""
    _seconds(where, "countdown", options.countdown, zero_ok=True)
    if options.eta is not None and not isinstance(options.eta, datetime):
        raise OptionError(f"{where}: eta must be a datetime (e.g. datetime.now(UTC) + "
                          f"timedelta(hours=1)), got {options.eta!r}; for a delay in "
                          "seconds use countdown=")
    if options.expires is not None and not isinstance(options.expires, datetime):
        _seconds(where, "expires (seconds, or a datetime)", options.expires, zero_ok=False)
    if options.countdown is not None and options.eta is not None:
        raise OptionError(f"{where}: give countdown or eta, not both")
    _check_strings(where, options)
    _check_priority(where, options.priority)


def _check_strings(where: str, options: PushOptions) -> None:
    for label in ("queue", "task_id", "idempotency_key"):
        value = getattr(options, label)
        if value is not None and (not isinstance(value, str) or not value):
            raise OptionError(f"{where}: {label} must be a non-empty string, got {value!r}")


def _check_priority(where: str, priority: object) -> None:
    if priority is None:
        return
    if isinstance(priority, bool) or not isinstance(priority, int) \
            or priority not in PRIORITY_RANGE:
        raise OptionError(f"{where}: priority must be an int from 0 (first) to 9, "
                          f"got {priority!r}")
