"""Worker subprocesses for the benchmarks: each in its own session, always stopped."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from benchmarks.procstats import group_pids

ROOT = Path(__file__).resolve().parent.parent
#: Seconds a worker gets to stop after SIGTERM before its process group is killed.
STOP_TIMEOUT_S = 15.0



class WorkerProcess:
    """A worker subprocess in its own session; :meth:`stop` ends its whole process group.

    Its output goes to a temporary file (never a pipe that could fill up), shown when a
    measurement fails.
    """

    def __init__(self, argv: list[str], env: dict[str, str]) -> None:
        self.argv = argv
        self._log = tempfile.TemporaryFile()  # noqa: SIM115 - closed when the worker stops
        self.process = subprocess.Popen(
            argv, cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=self._log,
            stderr=subprocess.STDOUT, start_new_session=True,
        )

    def exited(self) -> bool:
        return self.process.poll() is not None

    def output_tail(self, chars: int = 3000) -> str:
        self._log.seek(0)
        return self._log.read().decode(errors="replace")[-chars:]

    def stop(self) -> None:
        """SIGTERM to the group, SIGKILL to it after STOP_TIMEOUT_S; reaps the process."""
        pgid = self.process.pid  # start_new_session: the group id is the leader's pid
        # A Ctrl-C now must not cut the clean-up short and leak the worker: it is held
        # back and raised once the worker is gone.
        received: list[int] = []
        held = (signal.SIGINT, signal.SIGTERM)
        previous = {s: signal.signal(s, lambda signum, _frame: received.append(signum))
                    for s in held}
        try:
            if self.process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(pgid, signal.SIGTERM)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self.process.wait(STOP_TIMEOUT_S)
            # Whatever is left of the session (a stuck leader, pool children, children
            # in process groups of their own) is killed.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pgid, signal.SIGKILL)
            for pid in group_pids(pgid):
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
            self.process.wait(STOP_TIMEOUT_S)
            wait_until_gone(pgid)
            self._log.close()
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)
        if received:
            signal.raise_signal(received[0])


def wait_until_gone(session: int) -> None:
    """Wait (bounded) until no process of the session is alive, zombies aside.

    Workers that are not the leader's own children (``sh -c 'a & b & wait'``) are not
    reaped by ``wait``; until they are gone, their sockets may still be open.
    """
    deadline = time.monotonic() + STOP_TIMEOUT_S
    while group_pids(session, live_only=True) and time.monotonic() < deadline:
        time.sleep(0.01)


@contextlib.contextmanager
def running_worker(argv: list[str], env: dict[str, str]) -> Iterator[WorkerProcess]:
    """A started worker, stopped on the way out whatever happens (Ctrl-C included).

    SIGINT/SIGTERM arriving while the process is spawned are held back until the
    worker is in hand, so no signal can land between the spawn and the ``finally``.
    """
    received: list[int] = []
    held = (signal.SIGINT, signal.SIGTERM)
    previous = {s: signal.signal(s, lambda signum, _frame: received.append(signum)) for s in held}
    worker: WorkerProcess | None = None
    try:
        try:
            worker = WorkerProcess(argv, env)
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)
        if received:
            signal.raise_signal(received[0])
        yield worker
    finally:
        if worker is not None:
            worker.stop()
