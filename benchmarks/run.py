"""Relier against vanilla Celery, side by side, on one private Redis server.

Run from the repository root::

    python -m benchmarks.run            # default sizes, a few minutes on 2 cores
    python -m benchmarks.run --quick    # a smoke run, well under a minute
    python -m benchmarks.run --json results.json

Three workloads, each measured for both systems in the same run against the same
server (``relier.embedded.EmbeddedServer``), each measurement on a flushed database:

1. processing throughput of no-op tasks (queue filled first, then ONE worker started);
2. processing throughput of I/O-bound tasks (10 ms of non-blocking waiting each);
3. enqueue throughput, one message per call and in bulk.

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
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import FrameType, ModuleType
from typing import Any

import redis

from relier.embedded import EmbeddedServer

ROOT = Path(__file__).resolve().parent.parent
QUEUE = "bench"
#: Batch size of every bulk push (Relier's push_many/apush_many; the prefill of both).
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


class BenchError(RuntimeError):
    """A measurement could not be made (timeout, dead worker, wrong count)."""


# -- configuration -------------------------------------------------------------------------


@dataclass(frozen=True)
class Sizes:
    noop: int
    io: int
    single: int
    bulk: int

    @classmethod
    def for_args(cls, args: argparse.Namespace) -> Sizes:
        if args.quick:
            base = cls(noop=2_000, io=1_000, single=1_000, bulk=5_000)
        else:
            base = cls(noop=20_000, io=5_000, single=5_000, bulk=20_000)
        return cls(
            noop=args.n or base.noop,
            io=args.io_n or base.io,
            single=args.enqueue_n or base.single,
            bulk=args.bulk_n or base.bulk,
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
class Figure:
    """One row of the table: the same workload measured for both systems."""

    workload: str
    n: int
    relier: float
    celery: float | None
    relier_config: str
    celery_config: str
    unit: str = "tasks/s"
    relier_runs: list[float] = field(default_factory=list)
    celery_runs: list[float] = field(default_factory=list)

    @property
    def ratio(self) -> float | None:
        return self.relier / self.celery if self.celery else None

    def as_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["ratio"] = round(self.ratio, 3) if self.ratio else None
        return data


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
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pgid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(STOP_TIMEOUT_S)
        # Whatever is left of the group (a stuck leader, orphaned pool children) is killed.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGKILL)
        self.process.wait(STOP_TIMEOUT_S)
        self._log.close()

    def __enter__(self) -> WorkerProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


# -- the bench -----------------------------------------------------------------------------


class Bench:
    """Both systems' producers and workers, pointed at one server and database."""

    def __init__(self, server: EmbeddedServer, args: argparse.Namespace) -> None:
        self.url = server.url
        self.args = args
        self.client = redis.Redis.from_url(self.url)
        self.env = {**os.environ, "BENCH_REDIS_URL": self.url,
                    "BENCH_CELERY_PREFETCH": str(args.celery_prefetch),
                    "BENCH_CELERY_ACKS_LATE": "1" if args.celery_acks_late else "0",
                    "PYTHONUNBUFFERED": "1"}
        # The Celery app reads its broker URL and options from the environment on import.
        os.environ.update({k: self.env[k] for k in
                           ("BENCH_REDIS_URL", "BENCH_CELERY_PREFETCH", "BENCH_CELERY_ACKS_LATE")})
        self.rl: ModuleType = importlib.import_module("benchmarks.relier_app")
        self.cl: ModuleType = importlib.import_module("benchmarks.celery_app")
        self.rl.app.configure(redis_url=self.url)
        self._relier_pending = self.client.register_script(RELIER_PENDING)
        self._celery_pending = self.client.register_script(CELERY_PENDING)

    def close(self) -> None:
        self.rl.app.close()
        self.cl.app.close()
        self.client.close()

    # -- enqueueing (the same calls serve the timed runs and the prefill) ----------------

    def relier_single(self, task: Any, n: int) -> None:
        for _ in range(n):
            task.push()

    def relier_bulk(self, task: Any, n: int) -> None:
        for start in range(0, n, BULK_BATCH):
            task.push_many([((), {})] * min(BULK_BATCH, n - start))

    def relier_abulk(self, task: Any, n: int) -> None:
        async def main() -> None:
            try:
                await task.apush_many([((), {})] * WARMUP_PUSHES)  # connection, untimed
                self._timer_start = time.perf_counter()
                for start in range(0, n, BULK_BATCH):
                    await task.apush_many([((), {})] * min(BULK_BATCH, n - start))
                self._timer_end = time.perf_counter()
            finally:
                await self.rl.app.aclose()

        asyncio.run(main())

    def celery_single(self, task: Any, n: int) -> None:
        for _ in range(n):
            task.delay()

    def celery_bulk(self, task: Any, n: int) -> None:
        # Celery has no pipelined bulk send: its best is one producer (one connection,
        # no pool acquire per message) for every apply_async, each one LPUSH round trip.
        with self.cl.app.producer_or_acquire() as producer:
            for _ in range(n):
                task.apply_async(producer=producer)

    # -- measurements --------------------------------------------------------------------

    def flush(self) -> None:
        self.client.flushdb()

    def queue_length(self) -> int:
        return int(self.client.llen(QUEUE))

    def measure_enqueue(self, push: Callable[[Any, int], None], task: Any, n: int) -> float:
        """Tasks/s of ``push(task, n)`` on an empty database, after an untimed warm-up."""
        self.flush()
        push(task, WARMUP_PUSHES)
        started = time.perf_counter()
        push(task, n)
        elapsed = time.perf_counter() - started
        self._check_length(WARMUP_PUSHES + n)
        return n / elapsed

    def measure_relier_abulk(self, n: int) -> float:
        self.flush()
        self.relier_abulk(self.rl.noop, n)
        self._check_length(WARMUP_PUSHES + n)
        return n / (self._timer_end - self._timer_start)

    def _check_length(self, expected: int) -> None:
        found = self.queue_length()
        if found != expected:
            raise BenchError(f"queue {QUEUE!r} holds {found} messages, expected {expected}")

    def measure_processing(self, system: str, task_name: str, n: int, argv: list[str]) -> float:
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

        with WorkerProcess(argv, self.env) as worker:
            started = self._wait_for_start(worker, poll, n)
            finished = self._wait_for_drain(worker, poll, n, started)
        if system == "relier":
            self._check_relier_deliveries(n)
        return n / (finished - started)

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

    def _check_relier_deliveries(self, n: int) -> None:
        """Every task was delivered exactly once and none was dead-lettered."""
        deliveries = int(self.client.hget(f"relier:{{{QUEUE}}}:fences", "") or 0)
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


def repeat(runs: int, measure: Callable[[], float]) -> list[float]:
    return [round(measure(), 1) for _ in range(runs)]


def run_all(bench: Bench, sizes: Sizes, args: argparse.Namespace, say: Callable[[str], None]
            ) -> list[Figure]:
    runs = args.repeat
    relier_worker = f"1 process (uvloop), --concurrency {args.relier_concurrency}"
    figures: list[Figure] = []

    def processing(label: str, task: str, n: int, pool: CeleryPool) -> None:
        say(f"{label}: Relier, {n} tasks x{runs}")
        r = repeat(runs, lambda: bench.measure_processing("relier", task, n, bench.relier_argv()))
        say(f"{label}: Celery ({pool.pool} -c {pool.concurrency}), {n} tasks x{runs}")
        c = repeat(runs, lambda: bench.measure_processing("celery", task, n,
                                                          bench.celery_argv(pool)))
        figures.append(Figure(
            label, n, median(r), median(c), relier_worker,
            "1 worker, " + pool.describe(args.celery_prefetch, args.celery_acks_late),
            relier_runs=r, celery_runs=c))

    processing("process no-op", "noop", sizes.noop, args.celery_noop)
    processing(f"process I/O-bound ({bench.rl.IO_SLEEP_S * 1000:.0f} ms)", "io", sizes.io,
               args.celery_io)

    say(f"enqueue one by one: {sizes.single} x{runs} each")
    r = repeat(runs, lambda: bench.measure_enqueue(bench.relier_single, bench.rl.noop,
                                                   sizes.single))
    c = repeat(runs, lambda: bench.measure_enqueue(bench.celery_single, bench.cl.noop,
                                                   sizes.single))
    figures.append(Figure("enqueue one by one", sizes.single, median(r), median(c),
                          "task.push() in a loop (sync)", "task.delay() in a loop",
                          relier_runs=r, celery_runs=c))

    say(f"enqueue in bulk: {sizes.bulk} x{runs} each")
    r = repeat(runs, lambda: bench.measure_enqueue(bench.relier_bulk, bench.rl.noop, sizes.bulk))
    c = repeat(runs, lambda: bench.measure_enqueue(bench.celery_bulk, bench.cl.noop, sizes.bulk))
    figures.append(Figure("enqueue in bulk", sizes.bulk, median(r), median(c),
                          f"push_many, batches of {BULK_BATCH} (sync, 1 pipeline each)",
                          "apply_async(producer=p) in a loop, one shared producer",
                          relier_runs=r, celery_runs=c))
    r = repeat(runs, lambda: bench.measure_relier_abulk(sizes.bulk))
    figures.append(Figure("enqueue in bulk, async", sizes.bulk, median(r), c and median(c),
                          f"await apush_many, batches of {BULK_BATCH}",
                          "(same Celery figure: Celery has no async producer)",
                          relier_runs=r, celery_runs=c))
    return figures


# -- output --------------------------------------------------------------------------------


def print_table(figures: list[Figure], meta: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(width=None if sys.stdout.isatty() else 160)
    table = Table(title=f"Relier {meta['relier']} vs Celery {meta['celery']} "
                        f"({meta['cpus']} CPUs, {meta['server']}; median of {meta['repeat']})")
    table.add_column("workload")
    table.add_column("N", justify="right")
    table.add_column("Relier", justify="right")
    table.add_column("Celery", justify="right")
    table.add_column("ratio", justify="right")
    table.add_column("Relier config", overflow="fold")
    table.add_column("Celery config", overflow="fold")
    for f in figures:
        table.add_row(
            f.workload, str(f.n), f"{f.relier:,.0f} {f.unit}",
            f"{f.celery:,.0f} {f.unit}" if f.celery else "—",
            f"{f.ratio:.2f}x" if f.ratio else "—",
            f.relier_config, f.celery_config,
        )
    console.print(table)


def environment(server: EmbeddedServer, client: redis.Redis, args: argparse.Namespace
                ) -> dict[str, Any]:
    import celery

    import relier

    info = client.info("server")
    name = "valkey" if "valkey_version" in info else "redis"
    version = info.get("valkey_version") or info.get("redis_version")
    return {
        "relier": getattr(relier, "__version__", "?"),
        "celery": celery.__version__,
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "server": f"{name} {version}",
        "server_binary": server.binary,
        "repeat": args.repeat,
        "quick": args.quick,
    }


# -- entry point ---------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, help="no-op tasks processed (default 20000)")
    parser.add_argument("--io-n", type=int, help="I/O-bound tasks processed (default 5000)")
    parser.add_argument("--enqueue-n", type=int, help="one-by-one pushes timed (default 5000)")
    parser.add_argument("--bulk-n", type=int, help="bulk pushes timed (default 20000)")
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke run")
    parser.add_argument("--repeat", type=int, default=None,
                        help="runs of each measurement; the median is reported "
                             "(default 3, 1 with --quick)")
    parser.add_argument("--json", type=Path, metavar="PATH",
                        help="write the figures here (default: print them as JSON at the end)")
    parser.add_argument("--relier-concurrency", type=int, default=100)
    parser.add_argument("--celery-noop", type=CeleryPool.parse, default=CeleryPool("prefork", 2),
                        metavar="POOL:C", help="Celery pool for no-op tasks (default prefork:2)")
    parser.add_argument("--celery-io", type=CeleryPool.parse, default=CeleryPool("threads", 100),
                        metavar="POOL:C", help="Celery pool for I/O tasks (default threads:100)")
    parser.add_argument("--celery-prefetch", type=int, default=4,
                        help="worker_prefetch_multiplier (Celery's default: 4)")
    parser.add_argument("--celery-acks-early", dest="celery_acks_late", action="store_false",
                        help="Celery acks on receipt instead of after the task ran")
    args = parser.parse_args(argv)
    if args.repeat is None:
        args.repeat = 1 if args.quick else 3
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    return args


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)  # unwinds through every finally: workers, server


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    sizes = Sizes.for_args(args)
    signal.signal(signal.SIGTERM, _terminate)
    started = time.monotonic()

    def say(text: str) -> None:
        print(f"[{time.monotonic() - started:6.1f}s] {text}", file=sys.stderr, flush=True)

    with EmbeddedServer() as server:
        bench = Bench(server, args)
        try:
            meta = environment(server, bench.client, args)
            say(f"server {meta['server']} on {server.url}")
            figures = run_all(bench, sizes, args, say)
        except BenchError as exc:
            print(f"benchmark failed: {exc}", file=sys.stderr)
            return 1
        finally:
            bench.close()
    meta["seconds"] = round(time.monotonic() - started, 1)
    print_table(figures, meta)
    document = {"meta": meta, "results": [f.as_json() for f in figures]}
    if args.json:
        args.json.write_text(json.dumps(document, indent=2) + "\n")
        print(f"figures written to {args.json}")
    else:
        print(json.dumps(document, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
