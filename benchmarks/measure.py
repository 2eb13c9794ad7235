"""The measurements themselves: processing runs, enqueue runs, latency runs.

Every measurement starts on a flushed database of the one private server.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import redis

from benchmarks import latency, raw
from benchmarks.common import BenchError
from benchmarks.procstats import PeakRss, cores, group_cpu, process_cpu
from benchmarks.results import Run
from benchmarks.systems import System
from benchmarks.workers import WorkerProcess, running_worker

#: Pushes made (and not timed) before each timed enqueue run: connections, first SADD.
WARMUP_PUSHES = 200
#: Concurrent apush/kiq calls in the "100 concurrent" enqueue runs.
CONCURRENT_PUSHES = 100
#: Seconds between polls while waiting for the workers to take their first message.
START_POLL_S = 0.0005
#: Seconds between polls while waiting for the queue and in-flight work to drain.
DRAIN_POLL_S = 0.002
#: Seconds the workers may take from spawn to their first message.
START_TIMEOUT_S = 60.0
#: Slowest rate (tasks/s) a processing run may have before it is declared stuck.
MIN_RATE = 50.0
#: Seconds the clients of stopped workers may stay blocked on the server.
QUIET_TIMEOUT_S = 30.0

Poll = Callable[[], tuple[int, int]]


class Meter:
    """CPU of this process and of the Redis server over one timed stretch."""

    def __init__(self, server_pid: int | None) -> None:
        self.server_pid = server_pid

    def redis_cpu(self) -> float | None:
        return process_cpu(self.server_pid) if self.server_pid is not None else None

    def timed(self, action: Callable[[], None], n: int) -> Run:
        cpu, redis_cpu = time.process_time(), self.redis_cpu()
        started = time.perf_counter()
        action()
        elapsed = time.perf_counter() - started
        return Run(n / elapsed, (time.process_time() - cpu) / elapsed,
                   cores(redis_cpu, self.redis_cpu(), elapsed))

    async def atimed(self, action: Callable[[], Awaitable[None]], n: int) -> Run:
        cpu, redis_cpu = time.process_time(), self.redis_cpu()
        started = time.perf_counter()
        await action()
        elapsed = time.perf_counter() - started
        return Run(n / elapsed, (time.process_time() - cpu) / elapsed,
                   cores(redis_cpu, self.redis_cpu(), elapsed))


def concurrently(width: int, n: int, push: Callable[[], Awaitable[object]]
                 ) -> Callable[[], Awaitable[None]]:
    """``n`` awaited pushes made by ``width`` coroutines at once."""
    async def run() -> None:
        remaining = [n]

        async def pusher() -> None:
            while remaining[0] > 0:
                remaining[0] -= 1
                await push()

        await asyncio.gather(*(pusher() for _ in range(width)))
    return run


class Bench:
    """The measurements, against one server (``client``) whose database they flush."""

    def __init__(self, client: redis.Redis, url: str, env: dict[str, str],
                 server_pid: int | None) -> None:
        self.client = client
        self.url = url
        self.env = env
        self.meter = Meter(server_pid)
        #: Every raw round trip timed in this run (ms), for the latency comparison.
        self.rtt_ms: list[float] = []

    # -- enqueue -------------------------------------------------------------------------

    def enqueue(self, push: Callable[[int], object], n: int, queue_key: str) -> Run:
        """``push(n)`` on an empty database after an untimed warm-up; checks the count."""
        self.client.flushdb()
        push(WARMUP_PUSHES)
        run = self.meter.timed(lambda: push(n), n)
        self._check_length(queue_key, WARMUP_PUSHES + n)
        return run

    def aenqueue(self, push: Callable[[], Awaitable[object]], n: int, queue_key: str,
                 run_on: Callable[[Any], Any] = asyncio.run,
                 close: Callable[[], Awaitable[None]] | None = None) -> Run:
        """``n`` awaited pushes, ``CONCURRENT_PUSHES`` at once, after an untimed warm-up."""
        self.client.flushdb()

        async def main() -> Run:
            try:
                await concurrently(CONCURRENT_PUSHES, WARMUP_PUSHES, push)()
                return await self.meter.atimed(concurrently(CONCURRENT_PUSHES, n, push), n)
            finally:
                if close is not None:
                    await close()

        run: Run = run_on(main())
        self._check_length(queue_key, WARMUP_PUSHES + n)
        return run

    def raw_enqueue(self, push: Callable[[int], raw.Timed], n: int, queue_key: str) -> Run:
        """Like :meth:`enqueue`, timed by ``push`` itself (its set-up left out)."""
        self.client.flushdb()
        push(WARMUP_PUSHES)
        cpu, redis_cpu = time.process_time(), self.meter.redis_cpu()
        timed = push(n)
        run = Run(timed.rate, (time.process_time() - cpu) / timed.seconds,
                  cores(redis_cpu, self.meter.redis_cpu(), timed.seconds))
        self._check_length(queue_key, WARMUP_PUSHES + n)
        return run

    def raw_round_trips(self, n: int, queue_key: str) -> Run:
        self.client.flushdb()
        raw.round_trips(self.client, WARMUP_PUSHES)
        samples: list[float] = []

        def timed() -> None:
            samples.extend(raw.round_trips(self.client, n)[1])

        run = self.meter.timed(timed, n)
        self.rtt_ms.extend(samples)
        self._check_length(queue_key, WARMUP_PUSHES + n)
        return run

    def quiet_server(self) -> None:
        """Flush the database once no client of a stopped worker is still blocked on it.

        A killed worker's blocking pop stays registered until the server has read the
        closed connection; a push landing before that would be handed to a dead socket
        and lost from the next measurement.
        """
        deadline = time.monotonic() + QUIET_TIMEOUT_S
        while int(self.client.info("clients")["blocked_clients"]) > 0:
            if time.monotonic() > deadline:
                raise BenchError(f"clients still blocked {QUIET_TIMEOUT_S:.0f}s after "
                                 "the last workers stopped")
            time.sleep(0.01)
        self.client.flushdb()

    def _check_length(self, key: str, expected: int) -> None:
        found = int(self.client.llen(key))
        if found != expected:
            raise BenchError(f"list {key!r} holds {found} messages, expected {expected}")

    # -- processing ----------------------------------------------------------------------

    def processing(self, system: System, task: str, n: int) -> Run:
        """Fill the queue with ``n`` tasks, start the workers, time them until all are done.

        The clock runs from the last poll that saw the queue whole (no worker had taken
        anything yet) to the first poll that saw the queue and in-flight work both
        empty (every task ran and was acked).
        """
        self.quiet_server()
        system.fill(task, n)
        if system.pending(n)[0] != n:
            raise BenchError(f"{system.name}: queue holds {system.pending(n)[0]}, not {n}")
        with running_worker(system.argv(task), self.env) as worker:
            run = self.time_workers(worker, lambda: system.pending(n), n)
        system.check(n)
        return run

    def time_workers(self, worker: WorkerProcess, poll: Poll, n: int) -> Run:
        pgid = worker.process.pid
        started = self._wait_for_start(worker, poll, n)
        cpu, redis_cpu = group_cpu(pgid), self.meter.redis_cpu()
        with PeakRss(pgid) as memory:
            finished = self._wait_for_drain(worker, poll, n, started)
        cpu_after, redis_after = group_cpu(pgid), self.meter.redis_cpu()
        elapsed = finished - started
        return Run(n / elapsed, cores(cpu, cpu_after, elapsed),
                   cores(redis_cpu, redis_after, elapsed), memory.peak_mib,
                   per_task_us(cpu, cpu_after, n), per_task_us(redis_cpu, redis_after, n))

    def _wait_for_start(self, worker: WorkerProcess, poll: Poll, n: int) -> float:
        deadline = time.monotonic() + START_TIMEOUT_S
        last_whole = time.perf_counter()
        while True:
            sent = time.perf_counter()
            if poll()[0] < n:
                return last_whole
            last_whole = sent
            if worker.exited():
                raise BenchError(f"workers exited before taking a task:\n{worker.output_tail()}")
            if time.monotonic() > deadline:
                raise BenchError(f"workers took no task within {START_TIMEOUT_S:.0f}s:\n"
                                 f"{worker.output_tail()}")
            time.sleep(START_POLL_S)

    def _wait_for_drain(self, worker: WorkerProcess, poll: Poll, n: int, started: float
                        ) -> float:
        limit = max(60.0, n / MIN_RATE)
        while True:
            queued, inflight = poll()
            seen = time.perf_counter()
            if (queued, inflight) == (0, 0) and still_empty(poll):
                return seen
            if worker.exited():
                raise BenchError(f"workers exited with {queued} queued and {inflight} in "
                                 f"flight:\n{worker.output_tail()}")
            if seen > started + limit:
                raise BenchError(f"not drained after {limit:.0f}s ({queued} queued, {inflight} "
                                 f"in flight):\n{worker.output_tail()}")
            time.sleep(DRAIN_POLL_S)

    # -- latency -------------------------------------------------------------------------

    def latency(self, system: System, n: int, rate: float) -> latency.LatencyRun:
        """Start the workers, let them idle, push ``n`` stamp tasks at ``rate``/s."""
        self.quiet_server()
        push = system.stamp_pusher()
        with running_worker(system.argv("stamp"), self.env) as worker:
            def alive() -> str | None:
                return worker.output_tail() if worker.exited() else None

            return latency.measure(self.client, push, worker.process.pid, n, rate, alive)


def still_empty(poll: Poll) -> bool:
    """Empty again 10 ms later: a Celery worker holds a message only in memory between
    its BRPOP and its write to ``unacked``, a moment a single poll could fall into."""
    time.sleep(0.01)
    return poll() == (0, 0)


def per_task_us(before: float | None, after: float | None, n: int) -> float | None:
    """CPU seconds between two readings, per task, in microseconds."""
    return None if before is None or after is None else (after - before) / n * 1e6
