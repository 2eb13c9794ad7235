"""The pump: moves due messages (countdown, eta, retry delay, deferral) into their queues.

Delayed messages live in Redis, in each queue's sorted set, never in a worker's memory.
Every worker pumps its own queues; the Lua move is atomic, so pumping from many workers
at once moves each message exactly once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Final

import anyio

from relier.store import lanes
from relier.store.broker import PUMP_BATCH, REDIS_ERRORS, Broker

log = logging.getLogger("relier.worker")

#: Deferred sets (rolling deploys) are pumped every this many ticks: only messages whose
#: ``defer_window`` has ended move, back to the queue to be run or dead-lettered.
DEFERRED_EVERY: Final = 5


class Scheduler:
    """Pumps the delayed sets of ``queues`` every ``interval_s``."""

    def __init__(
        self, broker: Broker, queues: Sequence[str], interval_s: float, on_due: Callable[[], None],
        held: Sequence[str] = (),
    ) -> None:
        self._broker = broker
        self._queues = list(queues)
        self._held = list(held or queues)
        self._interval_s = interval_s
        self._on_due = on_due

    async def run(self) -> None:
        ticks = 0
        while True:
            try:
                moved = 0
                for queue in self._queues:
                    moved += await self._broker.pump(queue)
                ticks += 1
                if ticks % DEFERRED_EVERY == 0:  # window ends need no finer grain
                    moved += await self._pump_deferred()
                    await self._sweep_outboxes()
                if moved:
                    log.debug("moved %d due message(s) into their queues", moved)
                    self._on_due()
            except REDIS_ERRORS as exc:
                # The fetcher reports outages; the pump simply tries again next tick.
                log.debug("pump failed: %s", exc)
            await anyio.sleep(self._interval_s)

    async def _sweep_outboxes(self) -> None:
        """On a cluster, finish settles a stopped worker left half-applied (see
        relier/store/outbox.py), for every queue this worker holds, lanes included."""
        for queue in self._held:
            await self._broker.sweep_outbox(queue)

    async def _pump_deferred(self) -> int:
        moved = 0
        for queue in self._queues:
            moved += await lanes.pump_deferred(self._broker, queue=queue, batch=PUMP_BATCH)
        return moved
