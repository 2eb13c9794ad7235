"""One Redis node against a 3-master Redis Cluster, the same Relier workload on both.

Run from the repository root (docs/scaling.md quotes its figures)::

    python -m benchmarks.cluster --quick              # a smoke run, well under a minute
    python -m benchmarks.cluster --json cluster.json  # median of 3

Both topologies run at once on loopback, their runs interleaved so that load drift hits
both alike: one private server (``relier.embedded.EmbeddedServer``) and a 3-master
cluster with the slots split evenly (``tests.topologies.Cluster``). The work is spread
over three hash-tagged queues, ``{alpha}``, ``{delta}`` and ``{beta}``, one on each
master of the cluster (checked at start), and the same three on the one node.

- drain: N no-op tasks pre-filled per queue with ``push_many`` (untimed), then
  ``relier worker -Q {alpha},{delta},{beta} --processes 2`` is started and timed from its
  first take until the three queues and their in-flight work are empty (the suite's
  clock, benchmarks/measure.py);
- push: ``task.push()`` one at a time, and ``push_many`` in batches of 500, the queues
  taken in turn.

Redis CPU is summed over the servers of a topology; ``limit`` says what held each run
back. This machine's cores are shared by the workers, this process and every server.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

import redis
from rich.console import Console
from rich.table import Table

import relier
from benchmarks import report
from benchmarks.common import BenchError
from benchmarks.measure import WARMUP_PUSHES, Bench, Meter
from benchmarks.procstats import cores, machine_cpu, process_cpu
from benchmarks.results import Run, r
from benchmarks.run import positive, worker_env
from benchmarks.systems import BULK_BATCH, PROCESSES, python_argv
from benchmarks.workers import running_worker
from relier.embedded import EmbeddedServer
from relier.store import keys

#: One queue per master of the evenly split 3-master cluster (slots 865, 9053, 15419).
QUEUES = ("{alpha}", "{delta}", "{beta}")
CONCURRENCY = 100
#: A server at least this busy (cores) is the bottleneck: Redis runs commands on one thread.
#: Also: the machine is saturated at this share of its cores.
SATURATED = 0.9
#: Workers (or the producer) at this share of their processes' cores are what limits.
BUSY = 0.8
#: Seconds the clients of stopped workers may stay blocked on a server.
QUIET_TIMEOUT_S = 30.0
#: One queue's (queued, in flight): its list, the workers' processing lists and, on a
#: cluster, its outbox (every key is in the queue's slot, so on the node that serves it).
PENDING = """
local inflight = redis.call('LLEN', KEYS[2])
for _, key in ipairs(redis.call('KEYS', ARGV[1])) do
  inflight = inflight + redis.call('LLEN', key)
end
return {redis.call('LLEN', KEYS[1]), inflight}
"""
WORKLOADS = ("drain", "push", "push_many")


class ServersMeter(Meter):
    """CPU of several servers, summed. Each reading (per server, and the whole machine's)
    is kept: :meth:`split` gives them over the last timed run, whose start and end are
    the last two readings (``Meter.timed`` and ``Bench.time_workers`` read twice)."""

    def __init__(self, pids: list[int]) -> None:
        super().__init__(None)
        self.pids = pids
        self.readings: list[tuple[list[float | None], float | None]] = []

    def redis_cpu(self) -> float | None:
        reading = [process_cpu(pid) for pid in self.pids]
        self.readings.append((reading, machine_cpu()))
        known = [x for x in reading if x is not None]
        return sum(known) if len(known) == len(reading) else None

    def split(self, seconds: float) -> tuple[list[float | None], float | None]:
        """Cores of each server, and of the whole machine, over the last timed run."""
        (before, machine_before), (after, machine_after) = self.readings[-2:]
        return ([cores(b, a, seconds) for b, a in zip(before, after, strict=True)],
                cores(machine_before, machine_after, seconds))


@dataclass
class Measured:
    """One timed run: the suite's :class:`Run` plus each server's cores and the verdict."""

    run: Run
    server_cores: list[float | None]
    #: The whole machine's busy cores over the run (every process, also other jobs').
    machine_cores: float | None
    limit: str
    #: Drain runs: this process's cores while it polled the queues (start-up included).
    poller_cores: float | None = None

    def as_json(self) -> dict[str, Any]:
        return {**asdict(self.run), "server_cores": [r(c, 2) for c in self.server_cores],
                "machine_cores": r(self.machine_cores, 2), "poller_cores": self.poller_cores,
                "limit": self.limit}


@dataclass
class Topology:
    """One of the two set-ups: its URL, a producer App, a plain client per server."""

    name: str
    url: str
    nodes: list[redis.Redis]
    meter: ServersMeter
    env: dict[str, str]
    app: relier.App = field(init=False)
    runs: dict[str, list[Measured]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.app = relier.App(redis_url=self.url)

        @self.app.task(name="bench.noop", queue=QUEUES[0], ignore_result=True)
        async def noop() -> None:
            """The suite's no-op (benchmarks/relier_app.py runs it in the workers)."""

        self.tasks = [noop.options(queue=q) for q in QUEUES]
        self.client = self.app.sync_client()
        self.pending_script = self.client.register_script(PENDING)
        self.bench = Bench(self.nodes[0], self.url, self.env, None)
        self.bench.meter = self.meter

    # -- state of the servers ----------------------------------------------------------

    def flush(self) -> None:
        """Empty every server once no client of stopped workers is still blocked on it."""
        deadline = time.monotonic() + QUIET_TIMEOUT_S
        for node in self.nodes:
            while int(node.info("clients")["blocked_clients"]) > 0:
                if time.monotonic() > deadline:
                    raise BenchError(f"{self.name}: clients still blocked "
                                     f"{QUIET_TIMEOUT_S:.0f}s after the workers stopped")
                time.sleep(0.01)
            node.flushdb()

    def pending(self) -> tuple[int, int]:
        """(queued, in flight) summed over the three queues, one round trip per queue."""
        queued = inflight = 0
        for q in QUEUES:
            a, b = self.pending_script(keys=[q, keys.outbox(q)],
                                       args=[keys.processing(q, "*")])
            queued, inflight = queued + int(a), inflight + int(b)
        return queued, inflight

    def queued(self) -> int:
        return sum(int(self.client.llen(q)) for q in QUEUES)

    # -- the measurements --------------------------------------------------------------

    def fill(self, per_queue: int) -> None:
        for task in self.tasks:
            for start in range(0, per_queue, BULK_BATCH):
                task.push_many([((), {})] * min(BULK_BATCH, per_queue - start))

    def drain(self, per_queue: int) -> Measured:
        self.flush()
        self.fill(per_queue)
        n = per_queue * len(QUEUES)
        if (found := self.queued()) != n:
            raise BenchError(f"{self.name}: the queues hold {found}, not {n}")
        with running_worker(worker_argv(self.url), self.env) as worker:
            cpu, wall = time.process_time(), time.perf_counter()
            run = self.bench.time_workers(worker, self.pending, n)
            poller = (time.process_time() - cpu) / (time.perf_counter() - wall)
        for q in QUEUES:  # each message delivered once, none dead-lettered
            fetched = int(self.client.hget(keys.stats(q), "fetched") or 0)
            dead = int(self.client.llen(keys.dead_letters(q)))
            if dead or fetched != per_queue:
                raise BenchError(f"{self.name}: {q} made {fetched} deliveries for "
                                 f"{per_queue} tasks, {dead} dead-lettered")
        servers, machine = self.meter.split(n / run.rate)
        return Measured(run.rounded(), servers, machine,
                        limit(run.cores, PROCESSES, servers, machine, poller), round(poller, 2))

    def push(self, n: int, bulk: bool) -> Measured:
        """``n`` pushes timed after an untimed warm-up, the queues in turn."""
        self.flush()
        send = self._bulk if bulk else self._one_by_one
        send(WARMUP_PUSHES)
        run = self.meter.timed(lambda: send(n), n)
        if (found := self.queued()) != WARMUP_PUSHES + n:
            raise BenchError(f"{self.name}: the queues hold {found}, expected "
                             f"{WARMUP_PUSHES + n}")
        servers, machine = self.meter.split(n / run.rate)
        return Measured(run.rounded(), servers, machine,
                        limit(run.cores, 1, servers, machine, 0.0, "producer"))

    def _one_by_one(self, n: int) -> None:
        tasks = self.tasks
        for i in range(n):
            tasks[i % len(tasks)].push()

    def _bulk(self, n: int) -> None:
        for i, start in enumerate(range(0, n, BULK_BATCH)):
            self.tasks[i % len(self.tasks)].push_many([((), {})] * min(BULK_BATCH, n - start))

    def rate(self, workload: str) -> float | None:
        rates = [m.run.rate for m in self.runs.get(workload, [])]
        return round(statistics.median(rates), 1) if rates else None

    def median_run(self, workload: str) -> Measured | None:
        """The run whose rate is the median (the lower middle of an even count)."""
        runs = sorted(self.runs.get(workload, []), key=lambda m: m.run.rate)
        return runs[(len(runs) - 1) // 2] if runs else None

    def median(self, workload: str, pick: Callable[[Measured], float | None]) -> float | None:
        values = [v for m in self.runs.get(workload, []) if (v := pick(m)) is not None]
        return round(statistics.median(values), 2) if values else None

    def as_json(self) -> dict[str, Any]:
        return {"topology": self.name, "servers": len(self.nodes), "url": self.url,
                "rates": {w: self.rate(w) for w in self.runs},
                "runs": {w: [m.as_json() for m in ms] for w, ms in self.runs.items()}}

    def close(self) -> None:
        self.app.close()
        for node in self.nodes:
            node.close()


def worker_argv(url: str) -> list[str]:
    return python_argv("relier", "worker", "-A", "benchmarks.relier_app:app", "--redis-url", url,
                       "-Q", ",".join(QUEUES), "--processes", str(PROCESSES),
                       "--concurrency", str(CONCURRENCY), "--log-level", "warning")


def limit(runner: float | None, capacity: int, servers: list[float | None],
          machine: float | None, poller: float, who: str = "workers") -> str:
    """What held a run back, checked in this order: a server on its one core; the
    workers (or the producer) on theirs; every core of the machine busy (with whom);
    else none of them, so waiting on round trips."""
    known = [c for c in servers if c is not None]
    if runner is None or machine is None or len(known) != len(servers):
        return "unknown (no /proc)"
    busiest, total = max(known), sum(known)
    cpus = os.cpu_count() or 1
    if busiest >= SATURATED:
        return f"Redis: a server at {busiest:.2f} core"
    if runner >= BUSY * capacity:
        return f"CPU of the {who}: {runner:.2f} of {capacity} core{'s' if capacity > 1 else ''}"
    if machine >= SATURATED * cpus:
        polled = f", poller {poller:.2f}" if poller else ""
        other = max(machine - runner - total - poller, 0.0)
        return (f"all {cpus} cores busy: {who} {runner:.2f}, Redis {total:.2f}{polled}, "
                f"other {other:.2f}")
    return f"round trips ({machine:.2f} of {cpus} cores busy)"


# -- the run -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sizes:
    per_queue: int
    push: int
    bulk: int


def sizes(args: argparse.Namespace) -> Sizes:
    base = Sizes(2_000, 1_000, 6_000) if args.quick else Sizes(10_000, 5_000, 30_000)
    return Sizes(args.n or base.per_queue, args.push_n or base.push, args.bulk_n or base.bulk)


def start_cluster() -> Any:
    """tests/topologies.py's 3-master cluster, stopped again if it does not come up."""
    try:
        from tests.topologies import Cluster
    except ImportError as exc:  # it is a test helper: it imports pytest
        raise BenchError(f"the cluster comes from tests/topologies.py, which needs the test "
                         f"extra ({exc}): pip install -e '.[test]'") from None

    cluster = Cluster()
    try:
        return cluster.start()
    except BaseException:
        cluster.close()
        raise


def check_spread(topology: Topology, cluster: Any) -> None:
    """Each queue on a master of its own, as the figures assume."""
    client: Any = topology.client
    ports = {q: cluster.node_for_slot(client.keyslot(q)) for q in QUEUES}
    if len(set(ports.values())) != len(QUEUES):
        raise BenchError(f"the queues do not land on three masters: {ports}")


def measure(args: argparse.Namespace, say: Callable[[str], None],
            topologies: list[Topology]) -> None:
    size = sizes(args)
    chosen: dict[str, tuple[int, Callable[[Topology], Measured]]] = {
        "drain": (size.per_queue * len(QUEUES), lambda t: t.drain(size.per_queue)),
        "push": (size.push, lambda t: t.push(size.push, bulk=False)),
        "push_many": (size.bulk, lambda t: t.push(size.bulk, bulk=True)),
    }
    for workload in args.workloads:
        n, run = chosen[workload]
        say(f"{workload}: {n:,} tasks x{args.repeat}, one node and the cluster in turn")
        for _ in range(args.repeat):
            for topology in topologies:
                measured = run(topology)
                topology.runs.setdefault(workload, []).append(measured)
                say(f"  {topology.name}: {measured.run.rate:,.0f}/s ({measured.limit})")


def guarded_run(args: argparse.Namespace, say: Callable[[str], None]) -> dict[str, Any] | None:
    """Both topologies, always stopped (workers first, then every server)."""
    single: EmbeddedServer | None = None
    cluster: Any = None
    topologies: list[Topology] = []
    try:
        single = EmbeddedServer().start()
        cluster = start_cluster()
        assert single.process is not None
        one = redis.Redis.from_url(single.url, socket_timeout=60)
        topologies.append(Topology("one node", single.url, [one],
                                   ServersMeter([single.process.pid]), worker_env(single.url)))
        url = "redis+cluster://" + ",".join(f"{h}:{p}" for h, p in cluster.startup_nodes)
        nodes = [redis.Redis(host=h, port=p, socket_timeout=60) for h, p in cluster.startup_nodes]
        topologies.append(Topology("3-shard cluster", url, nodes, ServersMeter(
            [node.process.pid for node in cluster.nodes]), worker_env(url)))
        check_spread(topologies[1], cluster)
        meta = report.environment(one.info("server"), single.binary)
        say(f"{meta['server']}: one node on {single.port}, cluster on "
            f"{', '.join(str(p) for _, p in cluster.startup_nodes)}; load {meta['load_average']}")
        measure(args, say, topologies)
        return {"meta": meta, "topologies": topologies}
    except BenchError as exc:
        print(f"benchmark failed: {exc}", file=sys.stderr)
    except KeyboardInterrupt:
        print("interrupted: workers and servers stopped", file=sys.stderr)
        raise SystemExit(130) from None
    except redis.RedisError as exc:
        print(f"Redis failed ({type(exc).__name__}: {exc}); workers stopped", file=sys.stderr)
    finally:
        for topology in topologies:
            topology.close()
        if cluster is not None:
            cluster.close()
        if single is not None:
            single.close()
    return None


# -- output --------------------------------------------------------------------------------


def _rate(value: float | None) -> str:
    return "—" if value is None else f"{value:,.0f}/s"


def _cores(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}"


def table(topologies: list[Topology], meta: dict[str, Any]) -> Table:
    t = Table(title=f"Relier {meta['relier']} ({meta['commit']}): one node against a 3-shard "
                    f"cluster, {meta['cpus']} CPUs, {meta['server']}, median of "
                    f"{meta['repeat']}, load {meta['load_average']}")
    for name in ("topology", "drain", "worker µs/task", "Redis µs/task", "workers cores",
                 "Redis cores (sum)", "busiest server", "poller cores", "machine busy", "push",
                 "push_many"):
        t.add_column(name, justify="left" if name == "topology" else "right", overflow="fold",
                     no_wrap=name == "topology")
    for top in topologies:
        def drain(pick: Callable[[Measured], float | None], top: Topology = top) -> str:
            return _cores(top.median("drain", pick))

        t.add_row(top.name, _rate(top.rate("drain")),
                  _us(top.median("drain", lambda m: m.run.cpu_us_per_task)),
                  _us(top.median("drain", lambda m: m.run.redis_us_per_task)),
                  drain(lambda m: m.run.cores), drain(lambda m: m.run.redis_cores),
                  drain(lambda m: max((c for c in m.server_cores if c is not None),
                                      default=None)),
                  drain(lambda m: m.poller_cores), drain(lambda m: m.machine_cores),
                  _rate(top.rate("push")), _rate(top.rate("push_many")))
    return t


def _us(value: float | None) -> str:
    return "—" if value is None else f"{value:,.0f}"


def print_all(topologies: list[Topology], meta: dict[str, Any], per_queue: int) -> None:
    console = Console(width=None if sys.stdout.isatty() else 160, emoji=False)
    console.print(table(topologies, meta))
    console.print("What limited each median run (a server on its core, the workers or the "
                  "producer on theirs, every core of the machine, or none: round trips):",
                  highlight=False)
    for top in topologies:
        for workload in WORKLOADS:
            if (m := top.median_run(workload)) is not None:
                console.print(f"  {top.name:>15} {workload:>9} {m.run.rate:>9,.0f}/s: {m.limit}",
                              highlight=False)
    for note in (
        f"drain: {per_queue:,} no-op tasks per queue in {', '.join(QUEUES)}, pre-filled; "
        f"`relier worker -Q {','.join(QUEUES)} --processes {PROCESSES} --concurrency "
        f"{CONCURRENCY}`, results off; timed from the first take until all is acked.",
        "push: task.push() one at a time; push_many: batches of "
        f"{BULK_BATCH}; both from this one process, the queues in turn.",
        "cores: CPU seconds per wall second (workers: their whole session; Redis: summed "
        "over the topology's servers; poller: this process, polling each queue every 2 ms; "
        "machine busy: every process, other jobs' too, from /proc/stat). Every process "
        "shares this machine's cores.",
    ):
        console.print(f"  * {note}", highlight=False)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks.cluster", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="small sizes, one run each")
    p.add_argument("--repeat", type=positive, help="runs of each measurement (default 3; 1 quick)")
    p.add_argument("--json", type=Path, metavar="PATH", help="also write the figures here")
    p.add_argument("--n", type=positive, help="no-op tasks per queue to drain (default 10000)")
    p.add_argument("--push-n", type=positive, help="one-at-a-time pushes timed (default 5000)")
    p.add_argument("--bulk-n", type=positive, help="push_many pushes timed (default 30000)")
    p.add_argument("--workloads", default=",".join(WORKLOADS),
                   help=f"comma-separated, from {','.join(WORKLOADS)} (default: all)")
    args = p.parse_args(argv)
    args.repeat = args.repeat or (1 if args.quick else 3)
    args.workloads = [w.strip() for w in args.workloads.split(",") if w.strip()]
    if not args.workloads or set(args.workloads) - set(WORKLOADS):
        p.error(f"--workloads: choose from {','.join(WORKLOADS)}")
    return args


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt  # SIGTERM as Ctrl-C: unwinds through every finally


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _terminate)
    started = time.monotonic()

    def say(text: str) -> None:
        print(f"[{time.monotonic() - started:6.1f}s] {text}", file=sys.stderr, flush=True)

    found = guarded_run(args, say)
    if found is None:
        return 1
    topologies: list[Topology] = found["topologies"]
    size = sizes(args)
    meta = {**found["meta"], "repeat": args.repeat, "quick": args.quick, "sizes": asdict(size),
            "queues": list(QUEUES), "processes": PROCESSES, "concurrency": CONCURRENCY,
            "seconds": round(time.monotonic() - started, 1),
            "load_average_end": report.load_average()}
    print_all(topologies, meta, size.per_queue)
    if args.json:
        document = {"meta": meta, "results": [t.as_json() for t in topologies]}
        args.json.write_text(json.dumps(document, indent=2) + "\n")
        print(f"figures written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
