"""The vanilla Celery side of the benchmarks: the same three tasks, as Celery writes them.

The worker is started as ``celery -A benchmarks.celery_app worker ...`` with the broker
URL in ``BENCH_REDIS_URL`` (the benchmark sets it for the worker and for itself).
Celery is a bench/test dependency only.
"""

from __future__ import annotations

import os
import time

import redis
from celery import Celery  # type: ignore[import-untyped]

from benchmarks.common import IO_SLEEP_S, QUEUE, STARTS_KEY, redis_url

app = Celery("bench", broker=redis_url())
app.conf.update(
    # No result backend at all: both sides ignore results.
    result_backend=None,
    task_ignore_result=True,
    task_default_queue=QUEUE,
    # Ack after the task ran, as Relier does: same delivery guarantee, and "the queue
    # and the unacked hash are empty" then means "every task has run".
    task_acks_late=bool(int(os.environ.get("BENCH_CELERY_ACKS_LATE", "1"))),
    worker_prefetch_multiplier=int(os.environ.get("BENCH_CELERY_PREFETCH", "4")),
    worker_disable_rate_limits=True,
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,
)


@app.task(name="bench.noop", ignore_result=True)  # type: ignore[untyped-decorator]
def noop() -> None:
    """Does nothing: what is left is the runtime's own cost per task."""


@app.task(name="bench.io", ignore_result=True)  # type: ignore[untyped-decorator]
def io() -> None:
    """Waits on (simulated) I/O; under the threads pool the GIL is released while asleep."""
    time.sleep(IO_SLEEP_S)


_stamps: redis.Redis | None = None


@app.task(name="bench.stamp", ignore_result=True)  # type: ignore[untyped-decorator]
def stamp(index: int) -> None:
    """Records when it started, for the enqueue-to-start latency: ``index time`` on a list.

    The clock is read first; the write to Redis that reports it comes after.
    """
    started = time.time()
    global _stamps
    if _stamps is None:  # one client per pool process (made after the fork), thread-safe
        _stamps = redis.Redis.from_url(redis_url())
    _stamps.rpush(STARTS_KEY, f"{index} {started!r}")
