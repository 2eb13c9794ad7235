"""Finding messages a live worker holds but runs nowhere, and giving them back.

A fetch moves messages into the worker's processing lists on the server. If its reply
is lost (the connection drops after Redis ran the script or the ``BLMOVE``), those
messages sit there: the worker never heard of them, and Phoenix leaves a live worker's
lists alone. Every ``interval`` the watch compares the processing lists with the
messages the worker handed to its executor; one that is unaccounted for in two looks in
a row is given back to its queue. Two looks, because a message a waiter has just moved
is on the server a moment before its reply arrives: it is accounted for by the next look.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Sequence

import anyio

from relier.store.broker import REDIS_ERRORS, Broker

log = logging.getLogger("relier.worker")

#: (queue, message) -> how many copies of it are unaccounted for.
Unaccounted = Counter[tuple[str, bytes]]


class OrphanWatch:
    """Gives back what this worker's processing lists hold beyond what it runs."""

    def __init__(
        self,
        broker: Broker,
        queues: Sequence[str],
        worker_id: str,
        held: Callable[[], Counter[bytes]],
        interval_s: float,
    ) -> None:
        self._broker = broker
        self._queues = list(dict.fromkeys(queues))
        self._worker_id = worker_id
        self._held = held
        self._interval_s = interval_s

    async def run(self) -> None:
        """Look every interval until cancelled."""
        suspects: Unaccounted = Counter()
        while True:
            await anyio.sleep(self._interval_s)
            try:
                suspects = await self.look(suspects)
            except REDIS_ERRORS as exc:
                log.debug("orphan check skipped: %s", exc)

    async def look(self, suspects: Unaccounted) -> Unaccounted:
        """One look: give back what was unaccounted for now and at the previous look;
        returns what is unaccounted for now."""
        lists = await self._broker.processing_lists(self._queues, self._worker_id)
        held = self._held()
        unaccounted: Unaccounted = Counter()
        for queue, messages in lists.items():
            for raw, copies in Counter(messages).items():
                spare = copies - held[raw]
                if spare > 0:
                    unaccounted[(queue, raw)] = spare
                    held[raw] = 0
                else:
                    held[raw] -= copies
        for (queue, raw), copies in (unaccounted & suspects).items():
            for _ in range(copies):
                if await self._broker.reclaim(queue, self._worker_id, raw):
                    log.warning("gave back a message of %r that this worker held but never "
                                "ran (a fetch whose reply was lost)", queue)
                    unaccounted[(queue, raw)] -= 1
        return +unaccounted
