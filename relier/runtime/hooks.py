"""The one interface observers of task runs hang off, and the dispatcher that keeps
them from taking the worker down.

Metrics, Celery task events, the running table and the outcome log line all watch the
executor through :class:`TaskObserver` (today the ``TaskRecorder`` in
``relier/observability/recorder.py`` is that observer and feeds the others). An observer
is never on the critical path: :class:`Observers` calls each one inside its own
``try``, so an observer that raises is logged (with its traceback, naming the observer
and the hook) and the delivery still settles, the slot is still freed and the worker
goes on — dramatiq's ``emit_before``/``emit_after`` isolation.

It lives in ``runtime/`` (not ``observability/``) because the executor calls it and
layers import downwards only: observability implements the protocol, runtime owns it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    from relier.runtime.delivery import Delivery

log = logging.getLogger("relier.worker")


@runtime_checkable
class TaskObserver(Protocol):
    """Something that watches deliveries; it must not change what happens to them."""

    def started(self, delivery: Delivery) -> None:
        """The executor begins a delivery (before anything can settle it)."""

    def finished(self, delivery: Delivery) -> None:
        """The executor is done with a delivery, however it ended (``delivery.settled``)."""


class Observers:
    """Calls every observer's hook in turn; a failing one is logged and skipped."""

    def __init__(self, observers: Iterable[TaskObserver] = ()) -> None:
        self._observers = tuple(observers)

    def started(self, delivery: Delivery) -> None:
        for observer in self._observers:
            guarded(observer.started, delivery, what=f"{observer!r}.started")

    def finished(self, delivery: Delivery) -> None:
        for observer in self._observers:
            guarded(observer.finished, delivery, what=f"{observer!r}.finished")


def guarded(hook: Callable[[Delivery], None], delivery: Delivery, *, what: str) -> None:
    """Call ``hook(delivery)``; log an exception instead of letting it reach the worker."""
    try:
        hook(delivery)
    except Exception:  # an observer's bug must never cost a task or the worker
        log.exception("observer %s failed on a delivery from %r; the task goes on",
                      what, delivery.queue)
