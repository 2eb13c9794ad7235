"""Taking messages from Redis, never more than there are free slots for.

Two paths feed the worker:

* the **batch path**: one Lua call moves up to ``free`` messages from all the worker's
  queues (priority bucket first, then queue order, rotated each call for fairness) into
  its processing lists;
* the **idle path**: when the batch path finds nothing, one ``BLMOVE`` per queue waits
  on Redis for the next message, so an idle worker starts a new task within a round
  trip instead of a poll interval. The waiters stop re-arming as soon as work flows.

Every message moves atomically into this worker's processing list; none is ever only
in memory. A waiter's ``BLMOVE`` is never cancelled while the worker runs (its message
could be moved with the reply unread); on shutdown the processing lists are given back
whole, which covers that case too.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Sequence
from functools import partial
from typing import Final

import anyio

from relier.broker import REDIS_ERRORS, Broker
from relier.runtime.capacity import Capacity
from relier.runtime.delivery import Delivery, Settler
from relier.runtime.orphans import OrphanWatch
from relier.runtime.outage import LoopBackoff, OutageLog

log = logging.getLogger("relier.worker")

#: Seconds a blocking wait lasts on the server before the waiter checks in again.
BLOCK_S: Final = 1
#: Seconds the batch path sleeps when idle before looking at every list again (the
#: waiters only watch each queue's main list, not its priority buckets).
IDLE_POLL_S: Final = 1.0
MAX_BACKOFF_S: Final = 5.0
#: Most messages one batch fetch takes. Filling every free slot at once makes a busy
#: worker run in lockstep waves (all start, all finish, one big fetch); smaller fetches
#: keep slots refilling as they free up.
MAX_FETCH: Final = 32



class Fetcher:
    """Moves messages into the worker's processing lists and hands them to ``spawn``."""

    def __init__(
        self,
        broker: Broker,
        settler: Settler,
        queues: Sequence[str],
        worker_id: str,
        capacity: Capacity,
        spawn: Callable[[Delivery], None],
        orphan_check_s: float = 0.0,
    ) -> None:
        self._broker = broker
        self._settler = settler
        self._queues = list(queues)
        self._worker_id = worker_id
        self._capacity = capacity
        self._spawn = spawn
        self._armed = anyio.Event()
        self._woken = anyio.Event()
        #: Messages handed to the executor (or on their way to it), not yet done with.
        self._held: Counter[bytes] = Counter()
        #: One outage line for all the loops, and no false one for a blocked event loop.
        self._outage = OutageLog()
        self._orphans = (OrphanWatch(broker, queues, worker_id, self._held.copy,
                                     orphan_check_s) if orphan_check_s > 0 else None)

    def wake(self) -> None:
        """Ask the batch path to look again now (new messages were made due)."""
        self._woken.set()

    async def run(self) -> None:
        """Fetch until cancelled."""
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._outage.watch_loop, name="relier loop-lag probe")
            for queue in self._queues:
                tg.start_soon(self._wait_on, queue, name=f"relier waiter {queue}")
            if self._orphans is not None:
                tg.start_soon(self._orphans.run, name="relier orphan check")
            await self._batch_loop()

    def _deliver(self, raw: bytes, token: int, queue: str, *, counted: bool = False) -> None:
        self._capacity.take()
        if not counted:
            self._held[raw] += 1
        self._spawn(Delivery(raw, token, queue, self._worker_id, self._settler,
                             on_done=partial(self._done, raw)))

    def _done(self, raw: bytes) -> None:
        self._held[raw] -= 1
        if self._held[raw] <= 0:
            del self._held[raw]

    async def _batch_loop(self) -> None:
        rotation = 0
        backoff = LoopBackoff(self._outage, "fetching", MAX_BACKOFF_S)
        while True:
            free = await self._capacity.wait_free()
            order = self._queues[rotation:] + self._queues[:rotation]
            rotation = (rotation + 1) % len(self._queues)
            backoff.begin()
            try:
                batch = await self._broker.fetch(order, self._worker_id, min(free, MAX_FETCH))
            except REDIS_ERRORS as exc:
                await backoff.pause(exc)
                continue
            backoff.reset()
            for raw, token, queue in batch:
                self._deliver(raw, token, queue)
            if not batch:
                await self._idle()

    async def _idle(self) -> None:
        """Let the waiters block on Redis until one delivers, or the poll interval ends."""
        self._woken = anyio.Event()
        self._armed.set()
        with anyio.move_on_after(IDLE_POLL_S):
            await self._woken.wait()
        self._armed = anyio.Event()

    async def _wait_on(self, queue: str) -> None:
        backoff = LoopBackoff(self._outage, f"waiting on {queue!r}", MAX_BACKOFF_S)
        while True:
            await self._armed.wait()
            backoff.begin()
            try:
                raw = await self._broker.block_fetch(queue, self._worker_id, BLOCK_S)
            except REDIS_ERRORS as exc:
                await backoff.pause(exc)
                continue
            backoff.reset()
            if raw is not None:
                self._held[raw] += 1  # ours from now on, even while the claim retries
                # It is in our processing list already: claim it until that succeeds, or
                # it would sit there, held by a live worker and run by no one.
                while True:
                    backoff.begin()
                    try:
                        token = await self._broker.claim(queue, raw)
                        break
                    except REDIS_ERRORS as exc:
                        await backoff.pause(exc)
                backoff.reset()
                self._deliver(raw, token, queue, counted=True)
                self._woken.set()
