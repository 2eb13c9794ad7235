"""Threads of sync tasks that passed their hard timeout, and what to do when they pile up.

Python cannot stop a thread. A sync task past its hard timeout is failed and recorded at
once, but its thread runs on, holding whatever it holds. Each one is counted here until
it ends by itself; when more than ``max_abandoned_threads`` are still running, the
worker is told to recycle itself: stop fetching, drain, and exit with
:data:`EXIT_RECYCLE` so that its supervisor starts a clean process.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any, Final

from relier.errors import ConfigurationError

log = logging.getLogger("relier.worker")

#: Exit code of a worker that recycled itself (EX_TEMPFAIL: "try again", i.e. restart it).
EXIT_RECYCLE: Final = 75


def check_limit(limit: int) -> None:
    """Raise ``ConfigurationError`` unless ``max_abandoned_threads`` is an int >= 0."""
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
        raise ConfigurationError(f"max_abandoned_threads must be an int >= 0, got {limit!r}")


class ThreadSlot:
    """One sync task call in a worker thread: knows its thread and whether it has ended.

    ``run`` is what the thread executes. A call abandoned before its thread picked it up
    does not run at all.
    """

    __slots__ = ("_lock", "abandoned", "finished", "ident", "on_finish")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.ident: int | None = None
        self.finished = False
        self.abandoned = False
        self.on_finish: Callable[[ThreadSlot], None] | None = None

    def run(self, call: Callable[[], Any]) -> Any:
        with self._lock:
            if self.abandoned:
                return None
            self.ident = threading.get_ident()
        try:
            return call()
        finally:
            with self._lock:
                self.finished = True
                on_finish = self.on_finish
            if on_finish is not None:
                on_finish(self)

    def abandon(self, on_finish: Callable[[ThreadSlot], None]) -> bool:
        """Mark the call abandoned; True if its thread is still running it."""
        with self._lock:
            self.abandoned = True
            running = self.ident is not None and not self.finished
            if running:
                self.on_finish = on_finish
            return running


class AbandonedThreads:
    """Counts abandoned threads still running; calls ``on_exceeded`` once past the limit."""

    def __init__(self, limit: int, on_exceeded: Callable[[int], None]) -> None:
        check_limit(limit)
        self.limit = limit
        self._on_exceeded = on_exceeded
        self._lock = threading.Lock()
        self._running: set[ThreadSlot] = set()
        #: Every abandonment since the worker started (the ones that ended included).
        self.total = 0
        self._exceeded = False

    @property
    def running(self) -> int:
        """Abandoned threads that have not ended yet."""
        with self._lock:
            return len(self._running)

    def abandon(self, slot: ThreadSlot) -> None:
        """Count ``slot``'s thread if it is still running; call from the event loop."""
        if not slot.abandon(self._ended):
            return
        with self._lock:
            self._running.add(slot)
            self.total += 1
            running = len(self._running)
            exceeded = running > self.limit and not self._exceeded
            self._exceeded = self._exceeded or exceeded
        log.warning("a sync task's thread is still running after its hard timeout; "
                    "%d such thread(s) running (max_abandoned_threads=%d)", running, self.limit)
        if exceeded:
            self._on_exceeded(running)

    def _ended(self, slot: ThreadSlot) -> None:
        with self._lock:
            self._running.discard(slot)
        log.info("an abandoned sync task's thread has ended by itself")
