"""Whether a worker may take new messages now, and how many takes are under way.

The suspect lane needs a worker running one recovered message and nothing else: it
closes the intake, waits until nothing runs and no take is in flight (a blocking wait
on Redis may still deliver), runs its message, and opens the intake again.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import anyio

from relier.runtime.capacity import Capacity


class Intake:
    """An open/closed gate in front of every path that takes messages."""

    def __init__(self) -> None:
        self._open = anyio.Event()
        self._open.set()
        #: Takes under way (a fetch call, a blocking wait, a deferred pull).
        self.taking = 0
        self._take_ended = anyio.Event()

    @property
    def is_open(self) -> bool:
        return self._open.is_set()

    async def wait_open(self) -> None:
        while not self._open.is_set():
            await self._open.wait()

    def close(self) -> None:
        if self._open.is_set():
            self._open = anyio.Event()

    def reopen(self) -> None:
        self._open.set()

    @contextmanager
    def taking_now(self) -> Iterator[None]:
        """Count a take from before it asks Redis until its message is handed out."""
        self.taking += 1
        try:
            yield
        finally:
            self.taking -= 1
            ended, self._take_ended = self._take_ended, anyio.Event()
            ended.set()

    async def quiet(self, capacity: Capacity) -> None:
        """Wait until no task runs and no take is under way."""
        while self.taking or capacity.in_use:
            if capacity.in_use:
                await capacity.wait_idle()
            else:
                await self._take_ended.wait()
