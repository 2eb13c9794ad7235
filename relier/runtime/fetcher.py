"""Taking messages from Redis, never more than there are free slots for.

Two paths feed the worker:

* the **batch path**: one Lua call moves up to ``free`` messages from all the worker's
  queues (priority bucket first, then queue order, rotated each call for fairness) into
  its processing lists;
* the **idle path**: when the batch path finds nothing, one ``BLMOVE`` per queue waits
  on Redis for the next message, so an idle worker starts a new task within a round
  trip instead of a poll interval. The waiters stop re-arming as soon as work flows.

Two side lanes feed it too (both gated by the worker's :class:`Intake`): the suspect
lane, run alone (suspects.py), and the deferred sets of a rolling deploy (deferred.py).

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

from relier.app import App
from relier.protocol.queues import SUSPECT_QUEUE
from relier.runtime.capacity import Capacity
from relier.runtime.deferred import DeferredPuller
from relier.runtime.delivery import Delivery, Settler
from relier.runtime.intake import Intake
from relier.runtime.orphans import OrphanWatch
from relier.runtime.outage import LoopBackoff, OutageLog
from relier.runtime.suspects import SuspectRunner
from relier.store.broker import REDIS_ERRORS, Broker

log = logging.getLogger("relier.worker")

#: Seconds a blocking wait lasts on the server before the waiter checks in again.
BLOCK_S: Final = 1
#: Seconds the batch path sleeps when idle before looking at every list again (the
#: waiters only watch each queue's main list, not its priority buckets).
IDLE_POLL_S: Final = 1.0
#: Longest pause between fetches while Redis is unreachable: short (one attempt a second
#: per loop is no load on a server that is back), so that a worker
#: picks up recovered work soon after an outage (part of the kill → running-again bound).
MAX_BACKOFF_S: Final = 1.0
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
        app: App | None = None,
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
        self._orphans = (OrphanWatch(broker, [*queues, SUSPECT_QUEUE], worker_id,
                                     self._held.copy, orphan_check_s)
                         if orphan_check_s > 0 else None)
        self._intake = Intake()
        self._suspects = SuspectRunner(broker, worker_id, capacity, self._intake,
                                       self._deliver_taken)
        self._deferred = (DeferredPuller(app, broker, queues, worker_id, capacity,
                                         self._intake, self._deliver_taken)
                          if app is not None else None)

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
            tg.start_soon(self._suspects.run, name="relier suspect lane")
            if self._deferred is not None:
                tg.start_soon(self._deferred.run, name="relier deferred pull")
            await self._batch_loop()

    def _deliver_taken(self, raw: bytes, queue: str) -> None:
        self._deliver(raw, queue)

    def _deliver(self, raw: bytes, queue: str, *, counted: bool = False) -> None:
        self._capacity.take()
        if not counted:
            self._held[raw] += 1
        self._spawn(Delivery(raw, queue, self._worker_id, self._settler,
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
            await self._intake.wait_open()
            if not self._intake.is_open:
                continue  # closed again while this task yielded
            order = self._queues[rotation:] + self._queues[:rotation]
            rotation = (rotation + 1) % len(self._queues)
            with self._intake.taking_now():
                backoff.begin()
                try:
                    batch = await self._broker.fetch(order, self._worker_id,
                                                     min(free, MAX_FETCH))
                except REDIS_ERRORS as exc:
                    await backoff.pause(exc)
                    continue
                backoff.reset()
                for taken in batch:
                    self._deliver(taken.raw, taken.queue)
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
            await self._intake.wait_open()
            if not self._intake.is_open:
                continue  # closed again while this task yielded
            with self._intake.taking_now():
                await self._wait_once(queue, backoff)

    async def _wait_once(self, queue: str, backoff: LoopBackoff) -> None:
        """One blocking wait; a message it brings is claimed and handed out."""
        backoff.begin()
        try:
            raw = await self._broker.block_fetch(queue, self._worker_id, BLOCK_S)
        except REDIS_ERRORS as exc:
            await backoff.pause(exc)
            return
        backoff.reset()
        if raw is not None:
            self._held[raw] += 1  # ours from now on, even while the claim retries
            # It is in our processing list already: claim it until that succeeds, or
            # it would sit there, held by a live worker and run by no one.
            while True:
                backoff.begin()
                try:
                    await self._broker.claim(queue)
                    break
                except REDIS_ERRORS as exc:
                    await backoff.pause(exc)
            backoff.reset()
            self._deliver(raw, queue, counted=True)
            self._woken.set()

