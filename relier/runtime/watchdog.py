"""The watchdog: a thread that notices when the event loop stops turning.

An ``async def`` task that blocks (``time.sleep``, a CPU-bound loop, a sync driver)
stalls every task of its worker, and no timeout fires, since timers run on the loop too.
A coroutine on the loop bumps a timestamp every :data:`TICK_S`; this thread reads it.

* Past ``loop_stall_warn`` seconds without a tick it logs the stack the loop is stuck in
  and names the task on it (found by the executor's frame on that stack), and counts it.
* Past ``loop_stall_kill`` seconds it ends the process (exit code
  :data:`EXIT_LOOP_STALLED`) after deleting the worker's heartbeat key, so that Phoenix
  recovers the worker's tasks at its next sweep. A task that stalls every worker it lands
  on is then quarantined as poison after ``max_resurrections``.

A process that was suspended as a whole (SIGSTOP, a paused VM) also leaves a gap between
ticks; the thread sees that it overslept too and does not count that time as a stall.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from types import FrameType
from typing import Final

import anyio

from relier.context import TaskContext
from relier.errors import ConfigurationError
from relier.runtime import stacks

log = logging.getLogger("relier.watchdog")

#: Seconds between the loop's ticks (and the thread's checks, at most).
TICK_S: Final = 0.1
#: A check this many seconds late means the whole process was not running.
SUSPENDED_S: Final = 1.0
#: Exit code of a worker ended by the watchdog (EX_SOFTWARE).
EXIT_LOOP_STALLED: Final = 70


def check_stall_limits(warn_s: float, kill_s: float) -> None:
    """Raise ``ConfigurationError`` for stall limits that cannot work."""
    if not warn_s > 0:
        raise ConfigurationError(f"loop_stall_warn must be > 0 seconds, got {warn_s!r}")
    if not kill_s >= 0:
        raise ConfigurationError(f"loop_stall_kill must be >= 0 seconds, got {kill_s!r}")
    if kill_s and kill_s <= warn_s:
        raise ConfigurationError(
            f"loop_stall_kill ({kill_s:g}s) must be above loop_stall_warn ({warn_s:g}s), "
            "or 0 to never end the process")


class Watchdog:
    """Watches one event loop from a daemon thread; see the module docstring."""

    def __init__(self, warn_s: float, kill_s: float) -> None:
        check_stall_limits(warn_s, kill_s)
        self.warn_s = warn_s
        self.kill_s = kill_s
        #: Stalls past ``warn_s`` seen since the worker started.
        self.stalls = 0
        self._last_tick = time.monotonic()
        self._loop_thread: int | None = None
        self._on_kill: Callable[[], None] = lambda: None
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="relier-watchdog", daemon=True)

    def start(self, on_kill: Callable[[], None]) -> None:
        """Start watching the loop of the calling thread; ``on_kill`` ends the process."""
        self._loop_thread = threading.get_ident()
        self._last_tick = time.monotonic()
        self._on_kill = on_kill
        self._thread.start()

    def stop(self) -> None:
        self._stopped.set()
        if self._thread.is_alive():
            self._thread.join(1.0)

    async def tick(self) -> None:
        """Run on the watched loop until cancelled: prove that it turns."""
        while True:
            self._last_tick = time.monotonic()
            await anyio.sleep(TICK_S)

    def _watch(self) -> None:
        interval = min(TICK_S, self.warn_s / 4)
        checked = time.monotonic()
        tick_seen = self._last_tick
        credit = 0.0  # suspended time forgiven for the current tick
        warned = False
        cpu_checked = time.process_time()
        while not self._stopped.wait(interval):
            now, cpu = time.monotonic(), time.process_time()
            late = now - checked - interval
            # Overslept while the process burnt CPU: not a suspension but something holding
            # the GIL (a long C call), which blocks the loop just the same.
            busy = cpu - cpu_checked > late / 2
            checked, cpu_checked = now, cpu
            tick = self._last_tick
            if tick != tick_seen:
                if warned:
                    log.warning("event loop turning again after a stall of %.1fs",
                                now - tick_seen - credit)
                tick_seen, credit, warned = tick, 0.0, False
            if late > SUSPENDED_S and not busy:
                credit += late
                continue
            stalled = now - tick - credit
            if self.kill_s and stalled >= self.kill_s:
                log.critical("event loop blocked for %.1fs (loop_stall_kill=%gs): ending the "
                             "process so that its tasks run elsewhere. %s", stalled,
                             self.kill_s, self._blocker())
                self._on_kill()
                return
            if stalled >= self.warn_s and not warned:
                warned = True
                self.stalls += 1
                log.error("event loop blocked for %.1fs (loop_stall_warn=%gs; %d stall(s) on "
                          "this worker). %s", stalled, self.warn_s, self.stalls, self._blocker())

    def _blocker(self) -> str:
        """Which task holds the loop, and the loop thread's stack."""
        if self._loop_thread is None:
            return ""
        context = _task_on_stack(stacks.thread_frame(self._loop_thread))
        if context is None:
            return "Not inside a task.\n" + stacks.thread_stack(
                self._loop_thread, "Loop thread stack (most recent call last):")
        return (f"Blocked by task {context.name}[{context.id}] (attempt {context.attempt}).\n"
                + stacks.thread_stack(self._loop_thread, "Task stack (most recent call last):",
                                      task_only=True))


def _task_on_stack(frame: FrameType | None) -> TaskContext | None:
    """The innermost frame with a ``context`` local holding a TaskContext: the executor's
    (or a soft-timeout hook's) frame under the blocking code."""
    while frame is not None:
        value = frame.f_locals.get("context")
        if isinstance(value, TaskContext):
            return value
        frame = frame.f_back
    return None
