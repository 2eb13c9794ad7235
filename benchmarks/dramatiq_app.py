"""The dramatiq side of the benchmarks: its Redis broker, the same three tasks.

The worker is started as ``dramatiq benchmarks.dramatiq_app --processes 2`` with the
server's URL in ``BENCH_REDIS_URL``. No Results middleware: results are off. Default
middleware otherwise (vanilla dramatiq). dramatiq is a bench dependency only.

dramatiq keeps each message in the ``dramatiq:bench.msgs`` hash until it is acked
(after the actor ran), so that hash's length is the work not yet done.
"""

from __future__ import annotations

import time

import dramatiq
import redis
from dramatiq.brokers.redis import RedisBroker

from benchmarks.common import IO_SLEEP_S, QUEUE, STARTS_KEY, redis_url

broker = RedisBroker(url=redis_url())
dramatiq.set_broker(broker)


@dramatiq.actor(actor_name="bench.noop", queue_name=QUEUE, max_retries=0)
def noop() -> None:
    """Does nothing: what is left is the runtime's own cost per task."""


@dramatiq.actor(actor_name="bench.io", queue_name=QUEUE, max_retries=0)
def io() -> None:
    """Waits on (simulated) I/O; a worker thread releases the GIL while asleep."""
    time.sleep(IO_SLEEP_S)


_stamps: redis.Redis | None = None


@dramatiq.actor(actor_name="bench.stamp", queue_name=QUEUE, max_retries=0)
def stamp(index: int) -> None:
    """Records when it started: ``index time`` on the stamps list (clock read first)."""
    started = time.time()
    global _stamps
    if _stamps is None:  # one client per worker process (made after the fork)
        _stamps = redis.Redis.from_url(redis_url())
    _stamps.rpush(STARTS_KEY, f"{index} {started!r}")
