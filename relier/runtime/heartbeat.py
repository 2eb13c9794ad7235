"""The heartbeat: proof of life that a busy event loop cannot starve.

A thread with its own Redis connection re-arms the worker's heartbeat key (TTL
``heartbeat_ttl``) every ``heartbeat_interval`` and refreshes its registry entry. A task
hogging the loop does not stop it, so a CPU-heavy task never gets its worker declared
dead; a loop that is truly stuck is the watchdog's business. A frozen or killed process
stops beating, and the key's TTL tells the resurrector so.

The same thread publishes the worker's table of running tasks: with every beat, and also
soon after it changes (a task started or ended), at most once per ``PUBLISH_GAP_S``, so
that `relier inspect` lists a task within a fraction of a second of its start at the
cost of one write per gap however many tasks start in it, never one per task.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Final

from relier.protocol import registry
from relier.protocol.registry import RunningTask, WorkerInfo
from relier.store import registry as store
from relier.store.clients import SyncClient
from relier.store.errors import StoreError

log = logging.getLogger("relier.worker")

#: Least time between two publications of a changed running table (coalescing a burst).
PUBLISH_GAP_S: Final = 0.1


class Heartbeat:
    """Beats for one worker from a daemon thread until :meth:`stop`."""

    def __init__(
        self,
        client: SyncClient,
        info: WorkerInfo,
        interval_s: float,
        ttl_s: float,
        in_flight: Callable[[], int],
        running: Callable[[], list[RunningTask]] | None = None,
        running_changed: threading.Event | None = None,
    ) -> None:
        self._client = client
        self._info = info
        self._interval_s = interval_s
        self._ttl_ms = int(ttl_s * 1000)
        self._in_flight = in_flight
        #: The executor's table of running tasks, published with every beat (the cheap
        #: way for `relier inspect` to see what runs: no Redis write per task).
        self._running = running
        #: Set by the recorder when a task starts or ends (and by stop(), to wake us).
        self._changed = running_changed or threading.Event()
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="relier-heartbeat", daemon=True)
        self._failing = False

    def start(self) -> None:
        """Register and beat once (raising if Redis is unreachable), then keep beating."""
        self._beat()
        self._thread.start()

    def stop(self, *, deregister: bool) -> None:
        """Stop beating; ``deregister`` removes the worker from the registry."""
        self._stopped.set()
        self._changed.set()
        if self._thread.is_alive():
            self._thread.join(self._interval_s + 5)
        if deregister:
            try:
                store.deregister_sync(self._client, self._info.id)
            except StoreError as exc:
                log.warning("could not deregister worker %s: %s", self._info.id, exc)
        self._client.close()

    def mark_stopping(self) -> None:
        self._info.state = registry.STOPPING

    def flatline(self) -> None:
        """Stop beating and delete the heartbeat key now, for a process about to end
        abruptly: Phoenix then recovers its tasks at its next sweep, not after the TTL."""
        self._stopped.set()
        self._changed.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(2.0)  # a beat in progress would set the key again
        try:
            store.flatline_sync(self._client, self._info.id)
        except StoreError as exc:
            log.warning("could not delete the heartbeat key (%s); Phoenix will notice "
                        "when it expires", exc)

    def _run(self) -> None:
        next_beat = time.monotonic() + self._interval_s
        while True:
            changed = self._changed.wait(max(0.0, next_beat - time.monotonic()))
            if self._stopped.is_set():
                return
            if time.monotonic() >= next_beat:
                self._attempt(self._beat)
                next_beat = time.monotonic() + self._interval_s
            elif changed and self._running is None:
                self._changed.clear()  # nothing to publish; do not spin on a set event
            elif changed:
                self._attempt(self._publish_running)
                self._stopped.wait(PUBLISH_GAP_S)  # what changes meanwhile goes in one write

    def _attempt(self, step: Callable[[], None]) -> None:
        try:
            step()
        except Exception as exc:
            # A dead heartbeat thread would get a working worker declared dead.
            if not self._failing:
                log.warning("heartbeat failed (%r); retrying", exc)
            self._failing = True
            return
        if self._failing:
            log.warning("heartbeat restored")
            self._failing = False

    def _publish_running(self) -> None:
        assert self._running is not None
        self._changed.clear()  # before reading: a change after this read wakes us again
        store.publish_running_sync(self._client, self._info.id, self._running())

    def _declared_dead(self) -> bool:
        info = store.entry_sync(self._client, self._info.id)
        return info is not None and info.state == registry.DEAD

    def _beat(self) -> None:
        self._changed.clear()  # this beat publishes the running table too
        if self._declared_dead():
            log.error("this worker was declared dead (frozen or cut off longer than the "
                      "heartbeat TTL); its tasks were resurrected elsewhere and any late "
                      "results of ours are refused")
        self._info.last_heartbeat = time.time()
        self._info.in_flight = self._in_flight()
        store.beat_sync(self._client, self._info, ttl_ms=self._ttl_ms,
                        running=self._running() if self._running is not None else None)
