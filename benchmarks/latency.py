"""Enqueue-to-start latency on an idle worker, and that worker's idle memory.

Used by ``benchmarks.run``. The worker (already started by the caller) first gets a few
warm-up tasks, then sits idle for a moment while its memory is read; then tasks are
pushed one at a time on a fixed schedule (``rate`` per second, so the worker is idle
again when each one arrives). Each push is timed with ``time.time()`` just before the
producer call; each task (``bench.stamp``) reads ``time.time()`` first thing and reports
it on a Redis list. Both clocks are the same host's, so push-to-start is their
difference: the producer's own push, the broker, the worker's wake-up and fetch, and
its dispatch to the task.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import redis

from benchmarks.common import STARTS_KEY, BenchError
from benchmarks.procstats import Memory, group_memory

#: Tasks run (untimed) before the idle memory is read and the timed pushes begin.
WARMUP_TASKS = 10
#: Seconds the worker sits idle after its warm-up before its memory is read.
IDLE_SETTLE_S = 1.0
#: Seconds between polls of the stamps list.
STAMP_POLL_S = 0.01
#: Seconds the last pushed task may take to report its start.
STAMP_TIMEOUT_S = 60.0


@dataclass
class LatencyRun:
    """One paced run against one idle worker."""

    #: Push-to-start of each task, in milliseconds, in push order.
    latencies_ms: list[float]
    #: The worker's memory after its warm-up, idle, before the timed pushes.
    idle: Memory | None

    def summary(self) -> dict[str, Any]:
        return {"n": len(self.latencies_ms), **latency_stats(self.latencies_ms),
                **memory_json(self.idle)}


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100), interpolated between the closest ranks."""
    ordered = sorted(values)
    if len(ordered) == 1:
        return ordered[0]
    rank = (len(ordered) - 1) * q / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def latency_stats(latencies_ms: Sequence[float]) -> dict[str, float]:
    return {"p50_ms": round(percentile(latencies_ms, 50), 2),
            "p99_ms": round(percentile(latencies_ms, 99), 2),
            "max_ms": round(max(latencies_ms), 2),
            "mean_ms": round(statistics.fmean(latencies_ms), 2)}


def memory_json(memory: Memory | None) -> dict[str, float | None]:
    def r1(x: float | None) -> float | None:
        return None if x is None else round(x, 1)

    return {"idle_rss_mib": r1(memory.rss_mib if memory else None),
            "idle_pss_mib": r1(memory.pss_mib if memory else None)}


def paced_pushes(push: Callable[[int], object], indices: Sequence[int], rate: float
                 ) -> dict[int, float]:
    """Push each index at ``rate`` per second on a fixed schedule; their push times.

    The schedule does not wait for the tasks: a push that comes late (this process was
    descheduled) does not shift the ones after it.
    """
    pushed: dict[int, float] = {}
    begin = time.perf_counter()
    for k, index in enumerate(indices):
        delay = begin + k / rate - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        pushed[index] = time.time()
        push(index)
    return pushed


def wait_for_starts(client: redis.Redis, expected: Sequence[int],
                    alive: Callable[[], str | None]) -> dict[int, float]:
    """Poll the stamps list until every expected index has reported its start.

    ``alive()`` returns None while the worker runs, else what to say about its death.
    Raises BenchError on a duplicate, an unexpected index, a dead worker or a timeout.
    """
    deadline = time.monotonic() + STAMP_TIMEOUT_S
    while True:
        found = int(client.llen(STARTS_KEY))
        if found >= len(expected):
            break
        problem = alive()
        if problem is not None:
            raise BenchError(f"worker exited with {found}/{len(expected)} tasks started:\n"
                             f"{problem}")
        if time.monotonic() > deadline:
            raise BenchError(f"only {found}/{len(expected)} tasks started within "
                             f"{STAMP_TIMEOUT_S:.0f}s of the last push")
        time.sleep(STAMP_POLL_S)
    starts: dict[int, float] = {}
    for entry in client.lrange(STARTS_KEY, 0, -1):
        text = entry.decode() if isinstance(entry, bytes) else entry
        index_text, started_text = text.split()
        index = int(index_text)
        if index in starts:
            raise BenchError(f"task {index} started twice")
        starts[index] = float(started_text)
    if sorted(starts) != sorted(expected):
        raise BenchError(f"started {sorted(starts)[:10]}..., expected {sorted(expected)[:10]}...")
    return starts


def measure(client: redis.Redis, push: Callable[[int], object], pgid: int, n: int,
            rate: float, alive: Callable[[], str | None]) -> LatencyRun:
    """Warm up the worker of group ``pgid``, read its idle memory, time ``n`` paced pushes.

    The database must hold no stamps when called.
    """
    warmup = [-1 - k for k in range(WARMUP_TASKS)]
    paced_pushes(push, warmup, rate)
    wait_for_starts(client, warmup, alive)
    client.delete(STARTS_KEY)
    time.sleep(IDLE_SETTLE_S)
    idle = group_memory(pgid)
    indices = list(range(n))
    pushed = paced_pushes(push, indices, rate)
    starts = wait_for_starts(client, indices, alive)
    return LatencyRun([(starts[i] - pushed[i]) * 1000 for i in indices], idle)
