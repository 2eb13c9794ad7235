"""The suspect lane's runner: recovered messages re-run one at a time, alone.

Phoenix moves what a dead worker held to the suspect lane. When it finds the lane
non-empty, one worker (the holder of a lease) closes its intake, waits until nothing of
its own runs, then runs the lane's messages one by one with nothing else beside them. So
if the worker dies now, the one task it held is what killed it: Phoenix counts a *lone
death* against it, and quarantines it after ``max_resurrections`` of them. An innocent
task that merely shared a dead worker runs alone once and finishes.

The cost: while it runs the lane, that worker's other slots stay idle (and it first waits
for its running tasks to end). Other workers go on as usual.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Final

import anyio

from relier.protocol.queues import SUSPECT_QUEUE
from relier.runtime.capacity import Capacity
from relier.runtime.intake import Intake
from relier.store import lanes
from relier.store.broker import REDIS_ERRORS, Broker

log = logging.getLogger("relier.worker")

#: Seconds between looks at the suspect lane.
POLL_S: Final = 0.5
#: The runner's lease; renewed before each message, so a runner that died frees the lane
#: for another worker this long after it last took one.
LEASE_MS: Final = 4_000


class SuspectRunner:
    """Runs the suspect lane from one worker while it holds the lease."""

    def __init__(
        self, broker: Broker, worker_id: str, capacity: Capacity, intake: Intake,
        deliver: Callable[[bytes, str], None],
    ) -> None:
        self._broker = broker
        self._worker_id = worker_id
        self._capacity = capacity
        self._intake = intake
        self._deliver = deliver

    async def run(self) -> None:
        while True:
            await anyio.sleep(POLL_S)
            try:
                if await self._lane_is_ours():
                    await self._run_lane()
            except REDIS_ERRORS as exc:
                log.debug("suspect lane paused by a Redis error: %s", exc)
            finally:
                self._intake.reopen()

    async def _lane_is_ours(self) -> bool:
        return bool(await lanes.suspects_waiting(self._broker)) and \
            await lanes.hold_suspect_lease(self._broker, holder=self._worker_id,
                                                lease_ms=LEASE_MS)

    async def _run_lane(self) -> None:
        log.info("running the suspect lane: taking no other work until it is empty")
        self._intake.close()
        await self._intake.quiet(self._capacity)
        ran = 0
        while await lanes.hold_suspect_lease(self._broker, holder=self._worker_id,
                                                  lease_ms=LEASE_MS):
            batch = await self._broker.fetch([SUSPECT_QUEUE], self._worker_id, 1)
            if not batch:
                break
            log.debug("running a suspect alone")
            self._deliver(batch[0].raw, batch[0].queue)
            ran += 1
            await self._intake.quiet(self._capacity)
        log.info("ran %d recovered task(s) alone from the suspect lane", ran)
        await lanes.release_suspect_lease(self._broker, holder=self._worker_id)
