"""Which task ids are revoked, and the running tasks a revoke may terminate.

The truth is the revoked set in Redis (``relier:revoked``, written by ``revoke.lua``):
Celery keeps revoked ids in each worker's memory and forgets them on restart; Relier's
survive restarts for ``revoke_ttl``, so a task revoked while queued is skipped by
whichever worker takes it later. Each worker mirrors the set in memory, so checking a
task before it runs costs no round trip: the mirror is loaded at start, extended at once
by every revoke broadcast the worker hears (pidbox), and re-read every
``revoke_poll_interval`` in case a broadcast was missed (a reconnect, or ``relier
revoke`` writing while this worker was starting).

Terminating: an ``async def`` task runs inside a cancel scope registered here under its
id, so ``revoke(terminate=True)`` cancels it at its next ``await``. A thread cannot be
cancelled: a sync task is marked, runs on, and its result is discarded (``REVOKED`` is
stored instead).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Iterator
from types import TracebackType
from typing import Final

import anyio

from relier.runtime.runs import run_scope
from relier.store import control as control_store
from relier.store.broker import REDIS_ERRORS
from relier.store.clients import AsyncClient

log = logging.getLogger("relier.control")

#: Milliseconds re-read before the newest revocation seen, so that two revocations
#: written in the same millisecond (or out of order) are both found.
_OVERLAP_MS: Final = 5_000
#: At most this many ids are kept in memory (Celery's own bound is 50 000).
MAX_REMEMBERED: Final = 200_000


class RevokedIds:
    """The worker's in-memory mirror of the revoked set."""

    def __init__(self) -> None:
        self._ids: dict[str, None] = {}
        self._newest_ms = 0

    def __contains__(self, task_id: object) -> bool:
        return task_id in self._ids

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._ids))

    def __len__(self) -> int:
        return len(self._ids)

    def add(self, task_ids: Iterable[str]) -> None:
        for task_id in task_ids:
            self._ids[task_id] = None
        while len(self._ids) > MAX_REMEMBERED:
            del self._ids[next(iter(self._ids))]  # oldest first: dicts keep order

    async def refresh(self, client: AsyncClient) -> None:
        """Read what was revoked since the last read (everything, the first time)."""
        since = max(0, self._newest_ms - _OVERLAP_MS) if self._newest_ms else 0
        page = await control_store.revoked_since(client, since)
        self.add(page.task_ids)
        self._newest_ms = max(self._newest_ms, page.newest_ms)

    async def follow(self, client: AsyncClient, interval_s: float) -> None:
        """Re-read the set every ``interval_s`` until cancelled; Redis errors wait."""
        while True:
            try:
                await self.refresh(client)
            except REDIS_ERRORS as exc:
                log.debug("could not read the revoked ids (%s); trying again", exc)
            await anyio.sleep(interval_s)


class _Run:
    """One registered run: the block :meth:`Terminations.running` guards (a plain
    context manager, not a generator one: it is entered once per task).

    Inside a worker's :class:`~relier.runtime.runs.Runs`, the scope a terminate cancels
    is the run's own (made anyway); it stays cancelled after the task's call, which is
    harmless: what the run does next is its settle, shielded (delivery.py), and its
    outcome. Elsewhere (an executor driven directly) the block makes a scope of its own.
    """

    __slots__ = ("_own", "_runs", "_task_id", "is_async", "revoked", "scope", "started")

    def __init__(self, runs: dict[str, _Run], task_id: str, is_async: bool) -> None:
        self._runs = runs
        self._task_id = task_id
        shared = run_scope()
        self._own = shared is None
        self.scope = anyio.CancelScope() if shared is None else shared
        self.is_async = is_async
        self.revoked = False
        self.started = time.time()

    def __enter__(self) -> _Run:
        if self._own:
            self.scope.__enter__()
        self._runs[self._task_id] = self
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> bool:
        if self._runs.get(self._task_id) is self:
            del self._runs[self._task_id]
        if self._own:
            return self.scope.__exit__(exc_type, exc, tb)
        # A terminate cancelled the run's scope: the cancellation of the call ends here,
        # and the executor records the run as terminated.
        return (self.revoked and exc_type is not None
                and issubclass(exc_type, anyio.get_cancelled_exc_class()))


class Terminations:
    """Running tasks by id, so that a revoke with ``terminate=True`` can stop them."""

    def __init__(self) -> None:
        self._runs: dict[str, _Run] = {}

    def running(self, task_id: str, *, is_async: bool) -> _Run:
        """Register a run for the duration of the ``with`` block; its scope is what gets
        cancelled."""
        return _Run(self._runs, task_id, is_async)

    def terminate(self, task_ids: Iterable[str]) -> list[str]:
        """Cancel the async runs and mark the sync ones; returns the ids found running."""
        found = []
        for task_id in task_ids:
            run = self._runs.get(task_id)
            if run is None:
                continue
            run.revoked = True
            if run.is_async:
                run.scope.cancel()
            found.append(task_id)
        return found
