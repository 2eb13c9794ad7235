"""`relier worker --processes N`: N worker processes under one supervisor.

One worker process is one event loop on one core; the supervisor runs N of them and:

* **restarts** a child that exits when it was not asked to (a crash, a watchdog kill,
  a worker recycling itself after too many abandoned threads), with a backoff when a
  child dies young so a broken deployment does not spin;
* **forwards** SIGTERM and SIGINT to every child, so each drains its tasks as a single
  worker would (a second signal shortens their grace, as it does for one worker), and
  exits once they all have. Children run in their own process group, so a Ctrl-C in a
  terminal reaches them once, through the supervisor, not twice;
* serves **one** ``/metrics`` for the whole worker: children write their counters to
  prometheus-client's multiprocess files in a private directory, and the supervisor's
  endpoint merges them (plus the queue metrics read from Redis).

A child whose supervisor disappears (``kill -9``) notices within a second and stops
gracefully, instead of running on unsupervised.

Each child is a full worker with its own id, heartbeat and processing lists, so Phoenix
treats a child that died like any other dead worker.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from types import FrameType
from typing import Final

from relier.app import App
from relier.runtime.hooks import ChildMetrics

log = logging.getLogger("relier.supervisor")

#: Set in each child's environment: the supervisor's pid, watched by the child.
SUPERVISOR_ENV: Final = "RELIER_SUPERVISOR_PID"
#: A child that dies younger than this is restarted after a growing pause.
YOUNG_DEATH_S: Final = 10.0
MAX_RESTART_DELAY_S: Final = 30.0
#: Seconds between looks at the children.
POLL_S: Final = 0.1
#: Seconds children get to stop after SIGTERM when the supervisor itself fails.
LEFTOVER_GRACE_S: Final = 10.0


@dataclass(slots=True)
class _Child:
    slot: int
    process: subprocess.Popen[bytes] | None = None
    started: float = 0.0
    restart_at: float = 0.0
    delay: float = 0.0
    exits: list[int] = field(default_factory=list)


class Supervisor:
    """Runs ``count`` copies of ``relier worker <child_args>`` until told to stop."""

    def __init__(self, app: App, child_args: Sequence[str], count: int,
                 metrics: ChildMetrics | None = None) -> None:
        """``metrics``: the one endpoint serving every child's metrics (None: off)."""
        self._app = app
        self._args = [sys.executable, "-m", "relier", "worker", *child_args]
        self._children = [_Child(slot) for slot in range(count)]
        self._stopping = False
        self._signals: list[int] = []
        self._metrics = metrics

    def run(self) -> int:
        """Supervise until every child has stopped after a signal; returns the exit code."""
        previous = {s: signal.signal(s, self._on_signal) for s in (signal.SIGTERM,
                                                                   signal.SIGINT)}
        try:
            if self._metrics is not None:
                self._metrics.start()
            for child in self._children:
                self._spawn(child)
            log.info("supervisor %d running %d worker processes", os.getpid(),
                     len(self._children))
            while any(c.process is not None for c in self._children) or not self._stopping:
                time.sleep(POLL_S)
                self._forward_signals()
                self._reap()
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)
            self._kill_leftovers()
            if self._metrics is not None:
                self._metrics.close()
        failed = [code for c in self._children for code in c.exits[-1:] if code != 0]
        log.info("supervisor %d stopped", os.getpid())
        return 1 if failed else 0

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        # Only note it: the loop forwards it within POLL_S. (Not Event.set(): a handler
        # runs on the main thread, which may hold that event's lock at that instant.)
        self._signals.append(signum)

    def _forward_signals(self) -> None:
        while self._signals:
            signum = self._signals.pop(0)
            name = signal.Signals(signum).name
            if not self._stopping:
                log.info("%s: stopping %d worker processes (each drains its tasks)",
                         name, sum(c.process is not None for c in self._children))
            self._stopping = True
            for child in self._children:
                if child.process is not None and child.process.poll() is None:
                    child.process.send_signal(signum)

    def _reap(self) -> None:
        now = time.monotonic()
        for child in self._children:
            process = child.process
            if process is None:
                if not self._stopping and now >= child.restart_at:
                    self._spawn(child)
                continue
            code = process.poll()
            if code is None:
                continue
            child.process = None
            child.exits.append(code)
            if self._metrics is not None:
                self._metrics.forget(process.pid)
            if self._stopping:
                log.info("worker process %d stopped (exit code %d)", process.pid, code)
                continue
            lived = now - child.started
            child.delay = (min(max(child.delay * 2, 1.0), MAX_RESTART_DELAY_S)
                           if lived < YOUNG_DEATH_S else 0.0)
            child.restart_at = now + child.delay
            log.warning("worker process %d exited unexpectedly (exit code %d) after %.1fs; "
                        "restarting it%s", process.pid, code, lived,
                        f" in {child.delay:.0f}s" if child.delay else "")

    def _spawn(self, child: _Child) -> None:
        env = {**os.environ, SUPERVISOR_ENV: str(os.getpid()),
               **(self._metrics.child_env() if self._metrics is not None else {})}
        # A process group of its own: a terminal's Ctrl-C reaches the child only through us.
        try:
            child.process = subprocess.Popen(self._args, env=env, process_group=0)
        except OSError as exc:  # out of processes, memory or file descriptors: try later
            child.delay = min(max(child.delay * 2, 1.0), MAX_RESTART_DELAY_S)
            child.restart_at = time.monotonic() + child.delay
            log.error("could not start a worker process for slot %d (%s); retrying in %.0fs",
                      child.slot, exc, child.delay)
            return
        child.started = time.monotonic()
        log.info("started worker process %d (slot %d)", child.process.pid, child.slot)

    def _kill_leftovers(self) -> None:
        """On an abnormal exit of the loop itself, leave no child behind: ask each to stop
        (it gives its work back), and kill those still there after a bound."""
        alive = [c.process for c in self._children
                 if c.process is not None and c.process.poll() is None]
        for process in alive:
            process.terminate()
        deadline = time.monotonic() + LEFTOVER_GRACE_S
        for process in alive:
            try:
                process.wait(max(deadline - time.monotonic(), 0.0))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def watch_supervisor() -> None:
    """In a child: stop gracefully (as on SIGTERM) if the supervisor disappears."""
    parent = os.environ.get(SUPERVISOR_ENV)
    if not parent or not parent.isdigit():
        return

    def watch() -> None:
        while os.getppid() == int(parent):
            time.sleep(1.0)
        log.error("supervisor %s is gone; stopping", parent)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="relier-supervisor-watch", daemon=True).start()
