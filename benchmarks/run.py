"""Relier against vanilla Celery, side by side, on one private Redis server.

Run from the repository root::

    python -m benchmarks.run            # default sizes, a few minutes on 2 cores
    python -m benchmarks.run --quick    # a smoke run, well under a minute
    python -m benchmarks.run --json results.json

Four workloads, each measured for both systems in the same run against the same
server (``relier.embedded.EmbeddedServer``), each measurement on a flushed database:

1. processing throughput of no-op tasks (queue filled first, then ONE worker started),
   with the worker's peak memory;
2. processing throughput of I/O-bound tasks (10 ms of non-blocking waiting each), idem;
3. enqueue throughput, one message per call and in bulk;
4. enqueue-to-start latency on an idle worker (tasks pushed one at a time at a modest
   rate), with that worker's idle memory.

See ``benchmarks/README.md`` for what each figure means and how fairness is kept.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path
from types import FrameType, ModuleType
from typing import Any

import redis

from benchmarks import latency
from benchmarks.common import IO_SLEEP_S, QUEUE, BenchError
from benchmarks.procstats import PeakRss, cores, group_cpu, process_cpu
from relier.embedded import EmbeddedServer

ROOT = Path(__file__).resolve().parent.parent
#: Calls per Relier push_many/apush_many (timed bulk runs and Relier's prefill).
BULK_BATCH = 500
#: Pushes made (and not timed) before each timed enqueue run: connections, first SADD.
WARMUP_PUSHES = 200

#: Seconds between polls while waiting for a worker to take its first message.
START_POLL_S = 0.0005
#: Seconds between polls while waiting for the queue and in-flight work to drain.
DRAIN_POLL_S = 0.002
#: Seconds a worker may take from spawn to its first message.
START_TIMEOUT_S = 60.0
#: Slowest rate (tasks/s) a processing run may have before it is declared stuck.
MIN_RATE = 100.0
#: Seconds a worker gets to stop after SIGTERM before its process group is killed.
STOP_TIMEOUT_S = 15.0

# Queue length and in-flight count, in one round trip.
# Relier: in flight = messages in the worker's processing list(s); a message leaves it
# in the ack script, after the task ran. Celery (kombu): in flight = the ``unacked``
# hash; with task_acks_late an entry leaves it after the task ran.
RELIER_PENDING = """
local inflight = 0
for _, key in ipairs(redis.call('KEYS', ARGV[1])) do
  inflight = inflight + redis.call('LLEN', key)
end
return {redis.call('LLEN', KEYS[1]), inflight}
"""
CELERY_PENDING = "return {redis.call('LLEN', KEYS[1]), redis.call('HLEN', KEYS[2])}"


# -- configuration -------------------------------------------------------------------------


@dataclass(frozen=True)
class Sizes:
    noop: int
    io: int
    single: int
    bulk: int
    latency: int

    @classmethod
    def for_args(cls, args: argparse.Namespace) -> Sizes:
        if args.quick:
            base = cls(noop=2_000, io=1_000, single=1_000, bulk=5_000, latency=50)
        else:
            base = cls(noop=20_000, io=5_000, single=5_000, bulk=20_000, latency=200)
        return cls(
            noop=args.n or base.noop,
            io=args.io_n or base.io,
            single=args.enqueue_n or base.single,
            bulk=args.bulk_n or base.bulk,
            latency=args.latency_n or base.latency,
        )


@dataclass(frozen=True)
class CeleryPool:
    """A Celery worker pool choice, written ``pool:concurrency`` (``prefork:2``)."""

    pool: str
    concurrency: int

    @classmethod
    def parse(cls, text: str) -> CeleryPool:
        pool, _, count = text.partition(":")
        if pool not in {"prefork", "threads", "solo", "gevent", "eventlet"}:
            raise argparse.ArgumentTypeError(f"unknown Celery pool {pool!r}")
        try:
            concurrency = int(count or "1")
        except ValueError:
            raise argparse.ArgumentTypeError(f"bad concurrency in {text!r}") from None
        return cls(pool, concurrency)

    def describe(self, prefetch: int, acks_late: bool) -> str:
        acks = "acks_late" if acks_late else "acks early"
        return f"-P {self.pool} -c {self.concurrency}, prefetch x{prefetch}, {acks}"


# -- results -------------------------------------------------------------------------------


@dataclass
class Run:
    """One timed run: its rate, and the CPU the measured processes used meanwhile."""

    rate: float
    #: CPU seconds per wall second of the worker's process group (processing) or of
    #: this process (enqueue): 1.0 is one core kept busy.
    cores: float | None
    #: The same for the Redis server.
    redis_cores: float | None
    #: Processing runs: the peak RSS (MiB) of each process of the worker's group while
    #: timed, summed (the kernel's high-water marks). None for enqueue runs.
    peak_rss_mib: float | None = None

    def rounded(self) -> Run:
        def r2(x: float | None) -> float | None:
            return None if x is None else round(x, 2)

        def r1(x: float | None) -> float | None:
            return None if x is None else round(x, 1)

        return Run(round(self.rate, 1), r2(self.cores), r2(self.redis_cores),
                   r1(self.peak_rss_mib))


@dataclass
class Figure:
    """One row of the table: the same workload measured for both systems."""

    workload: str
    n: int
    relier_config: str
    celery_config: str
    relier_runs: list[Run]
    celery_runs: list[Run]
    unit: str = "tasks/s"

    @property
    def relier(self) -> float:
        return median([r.rate for r in self.relier_runs])

    @property
    def celery(self) -> float | None:
        return median([r.rate for r in self.celery_runs]) if self.celery_runs else None

    @property
    def ratio(self) -> float | None:
        return self.relier / self.celery if self.celery else None

    def cores(self, runs: list[Run]) -> float | None:
        values = [r.cores for r in runs if r.cores is not None]
        return round(statistics.median(values), 2) if values else None

    def peak_rss(self, runs: list[Run]) -> float | None:
        values = [r.peak_rss_mib for r in runs if r.peak_rss_mib is not None]
        return round(statistics.median(values), 1) if values else None

    def as_json(self) -> dict[str, Any]:
        return {
            "workload": self.workload, "n": self.n, "unit": self.unit,
            "relier": self.relier, "celery": self.celery,
            "ratio": round(self.ratio, 3) if self.ratio else None,
            "relier_peak_rss_mib": self.peak_rss(self.relier_runs),
            "celery_peak_rss_mib": self.peak_rss(self.celery_runs),
            "relier_config": self.relier_config, "celery_config": self.celery_config,
            "relier_runs": [asdict(r) for r in self.relier_runs],
            "celery_runs": [asdict(r) for r in self.celery_runs],
        }


@dataclass
class LatencyFigure:
    """Enqueue-to-start latency and idle memory of one worker kind, over all its runs."""

    system: str
    config: str
    rate: float
    runs: list[latency.LatencyRun]

    @property
    def latencies_ms(self) -> list[float]:
        # The runs' samples are pooled: with N tasks a run, the p99 of one run is only
        # its (N/100)th largest value.
        return [x for run in self.runs for x in run.latencies_ms]

    def stats(self) -> dict[str, float]:
        return latency.latency_stats(self.latencies_ms)

    def idle(self, field: str) -> float | None:
        values = [v for r in self.runs if (v := latency.memory_json(r.idle)[field]) is not None]
        return round(statistics.median(values), 1) if values else None

    def as_json(self) -> dict[str, Any]:
        return {
            "system": self.system, "config": self.config, "rate_per_s": self.rate,
            "n": len(self.latencies_ms), **self.stats(),
            "idle_rss_mib": self.idle("idle_rss_mib"),
            "idle_pss_mib": self.idle("idle_pss_mib"),
            "runs": [r.summary() for r in self.runs],
        }


def median(values: list[float]) -> float:
    return round(statistics.median(values), 1)


# -- worker subprocesses -------------------------------------------------------------------


class WorkerProcess:
    """A worker subprocess in its own session; :meth:`stop` ends its whole process group.

    Its output goes to a temporary file (never a pipe that could fill up), shown when a
    measurement fails.
    """

    def __init__(self, argv: list[str], env: dict[str, str]) -> None:
        self.argv = argv
        self._log = tempfile.TemporaryFile()  # noqa: SIM115 - closed when the worker stops
        self.process = subprocess.Popen(
            argv, cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=self._log,
            stderr=subprocess.STDOUT, start_new_session=True,
        )

    def exited(self) -> bool:
        return self.process.poll() is not None

    def output_tail(self, chars: int = 3000) -> str:
        self._log.seek(0)
        return self._log.read().decode(errors="replace")[-chars:]

    def stop(self) -> None:
        """SIGTERM to the group, SIGKILL to it after STOP_TIMEOUT_S; reaps the process."""
        pgid = self.process.pid  # start_new_session: the group id is the leader's pid
        # A Ctrl-C now must not cut the clean-up short and leak the worker: it is held
        # back and raised once the worker is gone.
        received: list[int] = []
        held = (signal.SIGINT, signal.SIGTERM)
        previous = {s: signal.signal(s, lambda signum, _frame: received.append(signum))
                    for s in held}
        try:
            if self.process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(pgid, signal.SIGTERM)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self.process.wait(STOP_TIMEOUT_S)
            # Whatever is left of the group (a stuck leader, pool children) is killed.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pgid, signal.SIGKILL)
            self.process.wait(STOP_TIMEOUT_S)
            self._log.close()
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)
        if received:
            signal.raise_signal(received[0])


@contextlib.contextmanager
def running_worker(argv: list[str], env: dict[str, str]) -> Iterator[WorkerProcess]:
    """A started worker, stopped on the way out whatever happens (Ctrl-C included).

    SIGINT/SIGTERM arriving while the process is spawned are held back until the
    worker is in hand, so no signal can land between the spawn and the ``finally``.
    """
    received: list[int] = []
    held = (signal.SIGINT, signal.SIGTERM)
    previous = {s: signal.signal(s, lambda signum, _frame: received.append(signum)) for s in held}
    worker: WorkerProcess | None = None
    try:
        try:
            worker = WorkerProcess(argv, env)
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)
        if received:
            signal.raise_signal(received[0])
        yield worker
    finally:
        if worker is not None:
            worker.stop()


# -- the bench -----------------------------------------------------------------------------


class Bench:
    """Both systems' producers and workers, pointed at one server and database."""

    def __init__(self, server: EmbeddedServer, args: argparse.Namespace) -> None:
        self.server = server
        self.url = server.url
        self.args = args
        self.client = redis.Redis.from_url(self.url, socket_timeout=60)
        settings = {"BENCH_REDIS_URL": self.url,
                    "BENCH_CELERY_PREFETCH": str(args.celery_prefetch),
                    "BENCH_CELERY_ACKS_LATE": "1" if args.celery_acks_late else "0"}
        self.env = {**os.environ, **settings, "PYTHONUNBUFFERED": "1"}
        # The Celery app reads its broker URL and options from the environment on import.
        os.environ.update(settings)
        self.rl: ModuleType = importlib.import_module("benchmarks.relier_app")
        self.cl: ModuleType = importlib.import_module("benchmarks.celery_app")
        self.rl.app.configure(redis_url=self.url)
        self._relier_pending = self.client.register_script(RELIER_PENDING)
        self._celery_pending = self.client.register_script(CELERY_PENDING)

    def close(self) -> None:
        self.rl.app.close()
        self.cl.app.close()
        self.client.close()

    def redis_cpu(self) -> float | None:
        process = self.server.process
        return process_cpu(process.pid) if process is not None else None

    # -- enqueueing (the same calls serve the timed runs and the prefill) ----------------

    @staticmethod
    def relier_single(task: Any, n: int) -> None:
        for _ in range(n):
            task.push()

    @staticmethod
    def relier_bulk(task: Any, n: int) -> None:
        for start in range(0, n, BULK_BATCH):
            task.push_many([((), {})] * min(BULK_BATCH, n - start))

    @staticmethod
    def celery_single(task: Any, n: int) -> None:
        for _ in range(n):
            task.delay()

    def celery_bulk(self, task: Any, n: int) -> None:
        # Celery has no pipelined bulk send: its best is one producer (one connection,
        # no pool acquire per message) for every apply_async, each one LPUSH round trip.
        with self.cl.app.producer_or_acquire() as producer:
            for _ in range(n):
                task.apply_async(producer=producer)

    # -- enqueue measurements ------------------------------------------------------------

    def flush(self) -> None:
        self.client.flushdb()

    def _check_length(self, expected: int) -> None:
        found = int(self.client.llen(QUEUE))
        if found != expected:
            raise BenchError(f"queue {QUEUE!r} holds {found} messages, expected {expected}")

    def _timed(self, action: Callable[[], None], n: int) -> Run:
        cpu, redis_cpu = time.process_time(), self.redis_cpu()
        started = time.perf_counter()
        action()
        elapsed = time.perf_counter() - started
        return Run(n / elapsed, (time.process_time() - cpu) / elapsed,
                   cores(redis_cpu, self.redis_cpu(), elapsed))

    def measure_enqueue(self, push: Callable[[Any, int], None], task: Any, n: int) -> Run:
        """``push(task, n)`` on an empty database, after an untimed warm-up."""
        self.flush()
        push(task, WARMUP_PUSHES)
        run = self._timed(lambda: push(task, n), n)
        self._check_length(WARMUP_PUSHES + n)
        return run

    def measure_relier_abulk(self, n: int) -> Run:
        """``await apush_many`` in batches, on one event loop, after an untimed warm-up."""
        self.flush()
        task = self.rl.noop
        calls: list[tuple[tuple[()], dict[str, Any]]] = [((), {})]
        timed: list[Run] = []

        async def pushes(count: int) -> None:
            for start in range(0, count, BULK_BATCH):
                await task.apush_many(calls * min(BULK_BATCH, count - start))

        async def main() -> None:
            try:
                await pushes(WARMUP_PUSHES)
                loop = asyncio.get_running_loop()
                # Time the awaited pushes only; the loop stays the same throughout.
                cpu, redis_cpu = time.process_time(), self.redis_cpu()
                started = loop.time()
                await pushes(n)
                elapsed = loop.time() - started
                timed.append(Run(n / elapsed, (time.process_time() - cpu) / elapsed,
                                 cores(redis_cpu, self.redis_cpu(), elapsed)))
            finally:
                await self.rl.app.aclose()

        asyncio.run(main())
        self._check_length(WARMUP_PUSHES + n)
        return timed[0]

    # -- processing measurements ---------------------------------------------------------

    def measure_processing(self, system: str, task_name: str, n: int, argv: list[str]) -> Run:
        """Fill the queue with ``n`` tasks, start one worker, time it until all are done.

        The clock runs from the last poll that saw the queue whole (the worker had not
        taken anything yet) to the first poll that saw the queue and in-flight work
        both empty (every task ran and was acked).
        """
        self.flush()
        if system == "relier":
            self.relier_bulk(getattr(self.rl, task_name), n)
            pending = self._relier_pending
            keys, args = [QUEUE], [f"relier:{{{QUEUE}}}:processing:*"]
        else:
            self.celery_bulk(getattr(self.cl, task_name), n)
            pending = self._celery_pending
            keys, args = [QUEUE, "unacked"], []
        self._check_length(n)

        def poll() -> tuple[int, int]:
            queued, inflight = pending(keys=keys, args=args)
            return int(queued), int(inflight)

        with running_worker(argv, self.env) as worker:
            started = self._wait_for_start(worker, poll, n)
            cpu, redis_cpu = group_cpu(worker.process.pid), self.redis_cpu()
            with PeakRss(worker.process.pid) as memory:
                finished = self._wait_for_drain(worker, poll, n, started)
            elapsed = finished - started
            run = Run(n / elapsed, cores(cpu, group_cpu(worker.process.pid), elapsed),
                      cores(redis_cpu, self.redis_cpu(), elapsed), memory.peak_mib)
        if system == "relier":
            self._check_relier_deliveries(n)
        return run

    def _wait_for_start(
        self, worker: WorkerProcess, poll: Callable[[], tuple[int, int]], n: int
    ) -> float:
        deadline = time.monotonic() + START_TIMEOUT_S
        last_whole = time.perf_counter()
        while True:
            sent = time.perf_counter()
            queued, _ = poll()
            if queued < n:
                return last_whole
            last_whole = sent
            if worker.exited():
                raise BenchError(f"worker exited before taking a task:\n{worker.output_tail()}")
            if time.monotonic() > deadline:
                raise BenchError(f"worker took no task within {START_TIMEOUT_S:.0f}s:\n"
                                 f"{worker.output_tail()}")
            time.sleep(START_POLL_S)

    def _wait_for_drain(
        self, worker: WorkerProcess, poll: Callable[[], tuple[int, int]], n: int, started: float
    ) -> float:
        limit = max(60.0, n / MIN_RATE)
        deadline = started + limit
        while True:
            queued, inflight = poll()
            seen = time.perf_counter()
            if queued == 0 and inflight == 0:
                # Confirm once more: a Celery worker holds a message only in memory
                # between its BRPOP and its write to ``unacked`` (a microsecond window).
                time.sleep(0.01)
                if poll() == (0, 0):
                    return seen
            if worker.exited():
                raise BenchError(f"worker exited with {queued} queued and {inflight} in flight:"
                                 f"\n{worker.output_tail()}")
            if seen > deadline:
                raise BenchError(
                    f"not drained after {limit:.0f}s ({queued} queued, {inflight} in flight); "
                    f"the worker was slower than {MIN_RATE:.0f} tasks/s:\n{worker.output_tail()}")
            time.sleep(DRAIN_POLL_S)

    # -- latency and idle memory ---------------------------------------------------------

    def measure_latency(self, system: str, argv: list[str], n: int, rate: float
                        ) -> latency.LatencyRun:
        """Start one worker, let it idle, push ``n`` stamp tasks at ``rate``/s, one by one.

        See ``benchmarks/latency.py``: push-to-start of each task, and the worker's
        memory while idle after a short warm-up.
        """
        self.flush()
        if system == "relier":
            task = self.rl.stamp
            push: Callable[[int], object] = task.push
        else:
            push = self.cl.stamp.delay
        with running_worker(argv, self.env) as worker:
            def alive() -> str | None:
                return worker.output_tail() if worker.exited() else None

            return latency.measure(self.client, push, worker.process.pid, n, rate, alive)

    def _check_relier_deliveries(self, n: int) -> None:
        """Every task was delivered exactly once and none was dead-lettered."""
        deliveries = int(self.client.hget(f"relier:{{{QUEUE}}}:stats", "fetched") or 0)
        dead = int(self.client.llen(f"relier:{{{QUEUE}}}:dlq"))
        if deliveries != n or dead:
            raise BenchError(f"Relier made {deliveries} deliveries for {n} tasks, {dead} DLQ'd")

    # -- worker command lines ------------------------------------------------------------

    def relier_argv(self) -> list[str]:
        return [sys.executable, "-m", "relier", "worker", "-A", "benchmarks.relier_app:app",
                "--redis-url", self.url, "-Q", QUEUE,
                "--concurrency", str(self.args.relier_concurrency), "--log-level", "warning"]

    def celery_argv(self, pool: CeleryPool) -> list[str]:
        return [sys.executable, "-m", "celery", "-A", "benchmarks.celery_app", "worker",
                "-Q", QUEUE, "-P", pool.pool, "-c", str(pool.concurrency), "-l", "warning",
                "--without-mingle", "--without-gossip", "--without-heartbeat"]


# -- the workloads -------------------------------------------------------------------------


def alternate(runs: int, relier: Callable[[], Run], celery: Callable[[], Run] | None
              ) -> tuple[list[Run], list[Run]]:
    """Relier, Celery, Relier, Celery...: a drift in the machine's load hits both alike."""
    r: list[Run] = []
    c: list[Run] = []
    for _ in range(runs):
        r.append(relier().rounded())
        if celery is not None:
            c.append(celery().rounded())
    return r, c


def run_all(bench: Bench, sizes: Sizes, args: argparse.Namespace, say: Callable[[str], None]
            ) -> list[Figure]:
    runs = args.repeat
    relier_worker = f"1 process (uvloop), --concurrency {args.relier_concurrency}"
    figures: list[Figure] = []

    def processing(label: str, task: str, n: int, pool: CeleryPool) -> None:
        say(f"{label}: {n} tasks, Relier / Celery ({pool.pool} -c {pool.concurrency}) x{runs}")
        r, c = alternate(
            runs,
            lambda: bench.measure_processing("relier", task, n, bench.relier_argv()),
            lambda: bench.measure_processing("celery", task, n, bench.celery_argv(pool)))
        figures.append(Figure(
            label, n, relier_worker,
            "1 worker, " + pool.describe(args.celery_prefetch, args.celery_acks_late), r, c))

    processing("process no-op", "noop", sizes.noop, args.celery_noop)
    processing(f"process I/O-bound ({IO_SLEEP_S * 1000:.0f} ms sleep)", "io", sizes.io,
               args.celery_io)

    say(f"enqueue one by one: {sizes.single} pushes x{runs}")
    r, c = alternate(runs,
                     lambda: bench.measure_enqueue(bench.relier_single, bench.rl.noop,
                                                   sizes.single),
                     lambda: bench.measure_enqueue(bench.celery_single, bench.cl.noop,
                                                   sizes.single))
    figures.append(Figure("enqueue one by one", sizes.single,
                          "task.push() in a loop (sync client)", "task.delay() in a loop", r, c))

    say(f"enqueue in bulk: {sizes.bulk} pushes x{runs}")
    r, c = alternate(runs,
                     lambda: bench.measure_enqueue(bench.relier_bulk, bench.rl.noop, sizes.bulk),
                     lambda: bench.measure_enqueue(bench.celery_bulk, bench.cl.noop, sizes.bulk))
    figures.append(Figure("enqueue in bulk", sizes.bulk,
                          f"task.push_many(), batches of {BULK_BATCH}, 1 script call each",
                          "task.apply_async(producer=p) in a loop, one shared producer",
                          r, c))
    r, _ = alternate(runs, lambda: bench.measure_relier_abulk(sizes.bulk), None)
    figures.append(Figure("enqueue in bulk, async", sizes.bulk,
                          f"await task.apush_many(), batches of {BULK_BATCH}",
                          "same Celery figure as above (Celery has no async producer)", r, c))
    return figures


def run_latency(bench: Bench, sizes: Sizes, args: argparse.Namespace,
                say: Callable[[str], None]) -> list[LatencyFigure]:
    """Enqueue-to-start latency and idle memory: Relier, then Celery with each pool."""
    n, rate = sizes.latency, args.latency_rate
    pools = list(dict.fromkeys([args.celery_noop, args.celery_io]))  # distinct, in order
    figures = [LatencyFigure("relier", f"1 process (uvloop), --concurrency "
                             f"{args.relier_concurrency}; task.push()", rate, [])]
    figures += [LatencyFigure(
        f"celery {pool.pool}:{pool.concurrency}",
        "1 worker, " + pool.describe(args.celery_prefetch, args.celery_acks_late)
        + "; task.delay()", rate, []) for pool in pools]
    argvs = [bench.relier_argv()] + [bench.celery_argv(pool) for pool in pools]
    say(f"enqueue-to-start latency: {n} tasks at {rate:g}/s on an idle worker, "
        f"Relier / " + " / ".join(f.system.capitalize() for f in figures[1:]) + f" x{args.repeat}")
    # Interleaved like the other runs: a drift in the machine's load hits all alike.
    for _ in range(args.repeat):
        for figure, argv in zip(figures, argvs, strict=True):
            system = "relier" if figure.system == "relier" else "celery"
            figure.runs.append(bench.measure_latency(system, argv, n, rate))
    return figures


# -- output --------------------------------------------------------------------------------


NOTES = (
    "Figures are medians of the runs (all runs are in the JSON); ratio = Relier / Celery.",
    "process: the queue is filled first (each system's own producer, untimed), then ONE "
    "worker is started; the clock runs from its first take until the queue and in-flight "
    "work are both empty. Results are ignored on both sides; both ack after the task ran.",
    "Celery's pool is the best one measured on 2 cores for each workload; its consumer "
    "(one BRPOP, one unacked write and one ack per message) caps it, whatever the pool.",
    "CPU = cores the worker's process group kept busy while timed (processing), or this "
    "process (enqueue); the machine's cores are shared with Redis and this process.",
    "peak RSS = each process's peak resident memory while timed (the kernel's VmHWM, reset "
    "at the first take), summed over the worker's process group (Celery prefork: main "
    "process + children, pages they share counted in each).",
)
LATENCY_NOTES = (
    "latency: one worker, idle; after 10 warm-up tasks, tasks are pushed one at a time "
    "at a fixed rate; push-to-start = time.time() read first thing in the task minus "
    "time.time() just before the producer call (same host clock). All runs pooled.",
    "idle RSS/PSS: the worker's process group after its warm-up and 1 s idle; PSS counts "
    "pages shared between processes (prefork's forked children) once.",
)


def print_table(figures: list[Figure], latencies: list[LatencyFigure], meta: dict[str, Any]
                ) -> None:
    from rich.console import Console
    from rich.table import Table

    # No emoji: rich would turn "threads:100:" in a pool name into a picture.
    console = Console(width=None if sys.stdout.isatty() else 150, emoji=False)
    table = Table(
        title=f"Relier {meta['relier']} vs Celery {meta['celery']}: {meta['cpus']} CPUs, "
              f"{meta['server']}, Python {meta['python']}, median of {meta['repeat']}")
    table.add_column("workload", overflow="fold")
    table.add_column("N", justify="right")
    table.add_column("Relier", justify="right")
    table.add_column("Celery", justify="right")
    table.add_column("ratio", justify="right")
    table.add_column("CPU R / C", justify="right")
    table.add_column("peak RSS MiB R / C", justify="right")
    table.add_column("Relier config", overflow="fold")
    table.add_column("Celery config", overflow="fold")

    def cpu(value: float | None) -> str:
        return "?" if value is None else f"{value:.2f}"

    def mib(value: float | None) -> str:
        return "—" if value is None else f"{value:.0f}"

    for f in figures:
        table.add_row(
            f.workload, f"{f.n:,}", f"{f.relier:,.0f}/s",
            f"{f.celery:,.0f}/s" if f.celery else "—",
            f"{f.ratio:.2f}x" if f.ratio else "—",
            f"{cpu(f.cores(f.relier_runs))} / {cpu(f.cores(f.celery_runs))}",
            f"{mib(f.peak_rss(f.relier_runs))} / {mib(f.peak_rss(f.celery_runs))}",
            f.relier_config, f.celery_config,
        )
    console.print(table)
    for note in NOTES:
        console.print(f"  * {note}", highlight=False)
    if not latencies:
        return

    rate = latencies[0].rate
    n = len(latencies[0].latencies_ms)
    idle = Table(title=f"Idle worker: enqueue-to-start latency and memory "
                       f"({n} tasks at {rate:g}/s, one at a time)")
    idle.add_column("measure")
    for figure in latencies:
        idle.add_column(figure.system.capitalize(), justify="right")
    stats = [f.stats() for f in latencies]
    for label, key in (("latency p50", "p50_ms"), ("latency p99", "p99_ms"),
                       ("latency max", "max_ms")):
        idle.add_row(label, *(f"{s[key]:.1f} ms" for s in stats))
    for label, key in (("idle RSS", "idle_rss_mib"), ("idle PSS", "idle_pss_mib")):
        idle.add_row(label, *(f"{mib(f.idle(key))} MiB" for f in latencies))
    console.print(idle)
    for figure in latencies:
        console.print(f"  * {figure.system.capitalize()}: {figure.config}", highlight=False)
    for note in LATENCY_NOTES:
        console.print(f"  * {note}", highlight=False)


def git_commit() -> str | None:
    """The checked-out commit (``+dirty`` with local changes), when this is a git tree."""
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, check=True,
                              capture_output=True, text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               cwd=ROOT, check=True, capture_output=True, text=True,
                               timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return f"{head}+dirty" if dirty else head


def environment(server: EmbeddedServer, client: redis.Redis, args: argparse.Namespace
                ) -> dict[str, Any]:
    import celery  # type: ignore[import-untyped]
    import kombu

    info = client.info("server")
    name = "valkey" if "valkey_version" in info else "redis"
    version = info.get("valkey_version") or info.get("redis_version")
    try:
        relier_version = metadata.version("relier")
    except metadata.PackageNotFoundError:
        relier_version = "(not installed)"
    return {
        "relier": relier_version,
        "commit": git_commit(),
        "celery": celery.__version__,
        "kombu": kombu.__version__,
        "redis_py": redis.__version__,
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "server": f"{name} {version}",
        "server_binary": server.binary,
        "repeat": args.repeat,
        "quick": args.quick,
        "relier_concurrency": args.relier_concurrency,
        "celery_noop_pool": f"{args.celery_noop.pool}:{args.celery_noop.concurrency}",
        "celery_io_pool": f"{args.celery_io.pool}:{args.celery_io.concurrency}",
        "celery_prefetch_multiplier": args.celery_prefetch,
        "celery_acks_late": args.celery_acks_late,
        "latency_rate_per_s": args.latency_rate,
        "load_average": os.getloadavg() if hasattr(os, "getloadavg") else None,
    }


# -- entry point ---------------------------------------------------------------------------


def positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1: {value}")
    return value


def positive_rate(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0 < value <= 1000:
        raise argparse.ArgumentTypeError(f"must be above 0 and at most 1000: {value}")
    return value


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=positive, help="no-op tasks processed (default 20000)")
    parser.add_argument("--io-n", type=positive, help="I/O-bound tasks processed (default 5000)")
    parser.add_argument("--enqueue-n", type=positive, help="one-by-one pushes timed (default 5000)")
    parser.add_argument("--bulk-n", type=positive, help="bulk pushes timed (default 20000)")
    parser.add_argument("--latency-n", type=positive,
                        help="tasks pushed one at a time per latency run (default 200)")
    parser.add_argument("--latency-rate", type=positive_rate, default=20.0,
                        help="pushes per second in latency runs (default 20)")
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke run")
    parser.add_argument("--repeat", type=positive, default=None,
                        help="runs of each measurement; the median is reported "
                             "(default 3, 1 with --quick)")
    parser.add_argument("--json", type=Path, metavar="PATH",
                        help="write the figures here (default: print them as JSON at the end)")
    parser.add_argument("--relier-concurrency", type=positive, default=100,
                        help="tasks one Relier worker runs at once (default 100)")
    parser.add_argument("--celery-noop", type=CeleryPool.parse, default=CeleryPool("prefork", 2),
                        metavar="POOL:C", help="Celery pool for no-op tasks (default prefork:2)")
    parser.add_argument("--celery-io", type=CeleryPool.parse, default=CeleryPool("threads", 100),
                        metavar="POOL:C", help="Celery pool for I/O tasks (default threads:100)")
    parser.add_argument("--celery-prefetch", type=positive, default=4,
                        help="worker_prefetch_multiplier (Celery's default: 4)")
    parser.add_argument("--celery-acks-early", dest="celery_acks_late", action="store_false",
                        help="Celery acks on receipt instead of after the task ran")
    args = parser.parse_args(argv)
    if args.repeat is None:
        args.repeat = 1 if args.quick else 3
    return args


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt  # SIGTERM as Ctrl-C: unwinds through every finally


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    sizes = Sizes.for_args(args)
    signal.signal(signal.SIGTERM, _terminate)
    started = time.monotonic()

    def say(text: str) -> None:
        print(f"[{time.monotonic() - started:6.1f}s] {text}", file=sys.stderr, flush=True)

    server = EmbeddedServer()
    try:  # not `with`: a signal during start() must still stop the server
        server.start()
        bench = Bench(server, args)
        try:
            meta = environment(server, bench.client, args)
            say(f"server {meta['server']} on {server.url}")
            figures = run_all(bench, sizes, args, say)
            latencies = run_latency(bench, sizes, args, say)
        finally:
            bench.close()
    except BenchError as exc:
        print(f"benchmark failed: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted: workers and server stopped", file=sys.stderr)
        return 130
    except redis.ConnectionError as exc:
        # A Ctrl-C in a terminal reaches the server too (same process group); it may
        # shut down before this process sees its KeyboardInterrupt.
        print(f"lost the private Redis server ({exc}); workers stopped", file=sys.stderr)
        return 1
    finally:
        server.close()
    meta["seconds"] = round(time.monotonic() - started, 1)
    if hasattr(os, "getloadavg"):
        meta["load_average_end"] = os.getloadavg()
    print_table(figures, latencies, meta)
    document = {"meta": meta, "results": [f.as_json() for f in figures],
                "latency": [f.as_json() for f in latencies]}
    if args.json:
        args.json.write_text(json.dumps(document, indent=2) + "\n")
        print(f"figures written to {args.json}")
    else:
        print(json.dumps(document, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
