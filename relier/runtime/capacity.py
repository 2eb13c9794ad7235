"""How many tasks a worker runs at once, and waiting for a free slot."""

from __future__ import annotations

import anyio


class Capacity:
    """Counts running tasks against a limit; the fetcher takes no more than is free."""

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError("concurrency must be at least 1")
        self.limit = limit
        self.in_use = 0
        self._changed = anyio.Event()
        #: Tasks waiting in wait_free/wait_idle: a release wakes them only when there are
        #: some (it happens once per task, and mostly nobody waits).
        self._waiting = 0

    @property
    def free(self) -> int:
        return self.limit - self.in_use

    def take(self) -> None:
        self.in_use += 1

    def release(self) -> None:
        self.in_use -= 1
        if self._waiting:
            self._notify()

    async def wait_free(self) -> int:
        """Wait until at least one slot is free; returns how many are."""
        while self.free <= 0:
            await self._wait_change()
        return self.free

    async def wait_idle(self) -> None:
        """Wait until no task is running."""
        while self.in_use > 0:
            await self._wait_change()

    async def _wait_change(self) -> None:
        self._waiting += 1
        try:
            await self._changed.wait()
        finally:
            self._waiting -= 1

    def _notify(self) -> None:
        changed, self._changed = self._changed, anyio.Event()
        changed.set()
