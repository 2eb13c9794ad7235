"""Telling a Redis outage from a blocked event loop, and saying each once.

A worker has several loops that talk to Redis (the batch fetch, one waiter per queue).
When Redis goes away they all fail at once; a user wants one line when it goes and one
when it is back, not one per loop. Two things look like an outage and are not:

* a **blocked event loop**: an ``async`` task calling ``time.sleep`` holds the loop, and
  every read in flight then times out on the client's clock although Redis answered in
  time. The watchdog reports the blocking task; here such a timeout is a debug line.
* a **stale connection** after a restart: the first call on a pooled connection that
  the old server closed fails once. One failure followed by a success is a blip (a debug
  line); an outage is a loop failing twice in a row.
"""

from __future__ import annotations

import logging
import time
from typing import Final

import anyio
from redis.exceptions import TimeoutError as RedisTimeoutError

log = logging.getLogger("relier.worker")

#: Seconds between the probe's turns; a turn this much later than due was a stall.
TICK_S: Final = 0.1
STALL_S: Final = 0.5
#: Consecutive failures of one loop that make an outage (1 is a stale-connection blip).
FAILURES_FOR_OUTAGE: Final = 2


class OutageLog:
    """The shared state of a worker's Redis loops: is Redis down, and since when."""

    def __init__(self) -> None:
        self._last_turn = time.monotonic()
        self._last_stall_end = 0.0
        self._down_since: float | None = None

    async def watch_loop(self) -> None:
        """Run on the worker's loop until cancelled: note when the loop last turned and
        when it last came back from a stall."""
        while True:
            self._turn()
            await anyio.sleep(TICK_S)

    def _turn(self) -> None:
        now = time.monotonic()
        if now - self._last_turn > TICK_S + STALL_S:
            self._last_stall_end = now
        self._last_turn = now

    def loop_was_blocked(self, since: float) -> bool:
        """Whether the loop stalled after ``since`` (the start of a call that timed out),
        or is only now turning again after a stall the probe has not seen end yet."""
        now = time.monotonic()
        return self._last_stall_end >= since or now - self._last_turn > TICK_S + STALL_S

    def failed(self, doing: str, exc: BaseException, failures: int) -> None:
        """One loop's ``failures``-th failure in a row: log the outage once."""
        if self._down_since is not None or failures < FAILURES_FOR_OUTAGE:
            log.debug("Redis call failed while %s (%s); trying again", doing, exc)
            return
        self._down_since = time.monotonic()
        log.warning("Redis unreachable (%s, while %s); the worker retries with backoff",
                    exc, doing)

    def recovered(self) -> None:
        """A loop's call succeeded: the outage, if any, is over."""
        if self._down_since is None:
            return
        log.warning("Redis reachable again after %.1fs; fetching resumed",
                    time.monotonic() - self._down_since)
        self._down_since = None


class LoopBackoff:
    """One loop's pauses between failed calls: exponential, reporting to the shared log."""

    def __init__(self, outage: OutageLog, doing: str, max_s: float) -> None:
        self._outage = outage
        self._doing = doing
        self._max_s = max_s
        self._failures = 0
        self._delay = 0.0
        self.started = time.monotonic()

    def begin(self) -> None:
        """Call before each Redis call (marks when it started)."""
        self.started = time.monotonic()

    async def pause(self, exc: BaseException) -> None:
        if isinstance(exc, RedisTimeoutError) and self._outage.loop_was_blocked(self.started):
            log.debug("a Redis read while %s timed out because the event loop was blocked "
                      "(see the watchdog's report); not an outage", self._doing)
            return
        self._failures += 1
        self._outage.failed(self._doing, exc, self._failures)
        self._delay = min(max(self._delay * 2, 0.1), self._max_s)
        await anyio.sleep(self._delay)

    def reset(self) -> None:
        if self._failures:
            self._outage.recovered()
        self._failures = 0
        self._delay = 0.0
