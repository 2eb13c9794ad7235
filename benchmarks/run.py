"""Relier against the raw limits of redis-py, Celery, taskiq and dramatiq, in one run.

Run from the repository root (see docs/benchmarks.md)::

    python -m benchmarks.run --quick                   # a smoke run, 1-2 minutes
    python -m benchmarks.run --json results.json       # the full run, 10-20 minutes on 2 cores
    python -m benchmarks.run --quick --systems relier,raw

One private Redis server (``relier.embedded.EmbeddedServer``) serves every measurement,
each on a flushed database. Every system runs 2 worker processes, results off.
Workloads: no-op and I/O-bound processing; push one at a time, 100 concurrent apush
and push_many bulk against redis-py's raw round trip, 50-in-flight and pipelined
rates; push -> start latency on idle workers against one raw round trip. Issue 14's
targets are judged met or missed from the same run.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

import redis

from benchmarks import latency, report, targets, workloads
from benchmarks.common import QUEUE, BenchError
from benchmarks.measure import Bench
from benchmarks.results import SYSTEMS, LatencyFigure, Row
from benchmarks.systems import CeleryPool, System
from relier.embedded import EmbeddedServer

#: Python packages each peer needs (the ``bench`` extra), for a clear error when missing.
NEEDS = {"celery": "celery", "taskiq": "taskiq_redis", "dramatiq": "dramatiq"}
WORKLOADS = ("noop", "io", "push", "apush", "push_many", "latency")


@dataclass(frozen=True)
class Sizes:
    noop: int
    io: int
    push: int
    apush: int
    bulk: int
    latency: int

    @classmethod
    def for_args(cls, args: argparse.Namespace) -> Sizes:
        if args.quick:
            base = cls(noop=2_000, io=1_000, push=1_000, apush=2_000, bulk=10_000, latency=40)
        else:
            base = cls(noop=20_000, io=5_000, push=5_000, apush=10_000, bulk=50_000,
                       latency=200)
        return cls(noop=args.n or base.noop, io=args.io_n or base.io,
                   push=args.push_n or base.push, apush=args.apush_n or base.apush,
                   bulk=args.bulk_n or base.bulk, latency=args.latency_n or base.latency)


# -- the run -------------------------------------------------------------------------------


def make_systems(names: list[str], client: redis.Redis, url: str, args: argparse.Namespace
                 ) -> dict[str, System]:
    from benchmarks import systems as s

    made: dict[str, System] = {}
    for name in names:
        if name == "relier":
            made[name] = s.Relier(client, url, args.relier_concurrency)
        elif name == "celery":
            pools = {"noop": args.celery_noop, "io": args.celery_io, "stamp": args.celery_noop}
            made[name] = s.Celery(client, url, pools)
        elif name == "taskiq":
            made[name] = s.Taskiq(client, url)
        elif name == "dramatiq":
            made[name] = s.Dramatiq(client, url)
    return made


def run_rows(bench: Bench, systems: dict[str, System], args: argparse.Namespace, sizes: Sizes,
             say: workloads.Say) -> list[Row]:
    w, raw, repeat = workloads, "raw" in args.systems, args.repeat
    chosen: dict[str, Callable[[], Row]] = {
        "noop": lambda: w.processing(bench, systems, "noop", "no-op processing", sizes.noop,
                                     repeat, say),
        "io": lambda: w.processing(bench, systems, "io", w.IO_LABEL, sizes.io, repeat, say),
        "push": lambda: w.push_one_by_one(bench, systems, raw, sizes.push, repeat, say),
        "apush": lambda: w.push_concurrent(bench, systems, raw, sizes.apush, repeat, say),
        "push_many": lambda: w.push_bulk(bench, systems, raw, sizes.bulk, repeat, say),
    }
    skip = set() if systems else {"noop", "io"}  # raw alone processes nothing
    rows = [make() for key, make in chosen.items() if key in args.workloads and key not in skip]
    return [row for row in rows if row.runs]


def measure_all(server: EmbeddedServer, args: argparse.Namespace, say: workloads.Say
                ) -> dict[str, Any]:
    """Every figure of the run, as the JSON document (without the timing meta)."""
    sizes = Sizes.for_args(args)
    client = redis.Redis.from_url(server.url, socket_timeout=60)
    meta = report.environment(client.info("server"), server.binary)
    say(f"server {meta['server']} on {server.url}; load average {meta['load_average']}")
    systems = make_systems([s for s in args.systems if s != "raw"], client, server.url, args)
    bench = Bench(client, server.url, worker_env(server.url),
                  server.process.pid if server.process else None)
    try:
        rows = run_rows(bench, systems, args, sizes, say)
        lat = workloads.push_to_start(bench, systems, sizes.latency, args.latency_rate,
                                      args.repeat, say) if "latency" in args.workloads else []
        if "latency" in args.workloads and "raw" in args.systems and not bench.rtt_ms:
            bench.raw_round_trips(sizes.push, QUEUE)  # the latency target's unit
    finally:
        for system in systems.values():
            system.close()
        client.close()
    rtt = latency.latency_stats(bench.rtt_ms) if bench.rtt_ms else None
    judged = targets.judge({row.key: row for row in rows}, lat,
                           rtt["p50_ms"] if rtt else None, args.cpu_baseline_us)
    return {"meta": {**meta, **options(args, sizes)}, "rows": rows, "latency": lat,
            "raw_round_trip": rtt, "targets": judged}


def worker_env(url: str) -> dict[str, str]:
    return {**os.environ, "BENCH_REDIS_URL": url, "PYTHONUNBUFFERED": "1"}


def options(args: argparse.Namespace, sizes: Sizes) -> dict[str, Any]:
    return {"repeat": args.repeat, "quick": args.quick, "systems": args.systems,
            "workloads": args.workloads,
            "sizes": sizes.__dict__, "relier_concurrency": args.relier_concurrency,
            "celery_noop_pool": str(args.celery_noop), "celery_io_pool": str(args.celery_io),
            "latency_rate_per_s": args.latency_rate, "cpu_baseline_us": args.cpu_baseline_us}


def as_json(found: dict[str, Any]) -> dict[str, Any]:
    rows: list[Row] = found["rows"]
    lat: list[LatencyFigure] = found["latency"]
    return {"meta": found["meta"], "results": [row.as_json() for row in rows],
            "latency": [f.as_json() for f in lat], "raw_round_trip_ms": found["raw_round_trip"],
            "targets": [t.as_json() for t in found["targets"]]}


# -- command line --------------------------------------------------------------------------


def positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1: {value}")
    return value


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0 < value <= 1_000_000:
        raise argparse.ArgumentTypeError(f"must be above 0: {value}")
    return value


def choices(allowed: tuple[str, ...], what: str) -> Callable[[str], list[str]]:
    """A parser of comma-separated names from ``allowed``, returned in ``allowed``'s order."""
    def parse(text: str) -> list[str]:
        names = [name.strip() for name in text.split(",") if name.strip()]
        unknown = [name for name in names if name not in allowed]
        if unknown or not names:
            raise argparse.ArgumentTypeError(f"unknown {what} {', '.join(unknown) or '(none)'};"
                                             f" choose from {','.join(allowed)}")
        return [a for a in allowed if a in names]
    return parse


def celery_pool(text: str) -> CeleryPool:
    try:
        return CeleryPool.parse(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="small sizes, one run each: a smoke run")
    p.add_argument("--systems", type=choices(SYSTEMS, "system"), default=list(SYSTEMS),
                   help=f"comma-separated, from {','.join(SYSTEMS)} (default: all)")
    p.add_argument("--workloads", type=choices(WORKLOADS, "workload"), default=list(WORKLOADS),
                   help=f"comma-separated, from {','.join(WORKLOADS)} (default: all)")
    p.add_argument("--repeat", type=positive, help="runs of each measurement (default 3; 1 quick)")
    p.add_argument("--json", type=Path, metavar="PATH", help="also write the figures here")
    p.add_argument("--n", type=positive, help="no-op tasks processed (default 20000)")
    p.add_argument("--io-n", type=positive, help="I/O-bound tasks processed (default 5000)")
    p.add_argument("--push-n", type=positive, help="one-at-a-time pushes timed (default 5000)")
    p.add_argument("--apush-n", type=positive, help="concurrent apushes timed (default 10000)")
    p.add_argument("--bulk-n", type=positive, help="bulk pushes timed (default 50000)")
    p.add_argument("--latency-n", type=positive, help="tasks per latency run (default 200)")
    p.add_argument("--latency-rate", type=positive_float, default=20.0,
                   help="pushes per second in latency runs (default 20)")
    p.add_argument("--relier-concurrency", type=positive, default=100,
                   help="Relier --concurrency per process (default 100)")
    p.add_argument("--celery-noop", type=celery_pool, default=CeleryPool("threads", 4),
                   metavar="POOL:C", help="each Celery worker's pool for no-op (threads:4)")
    p.add_argument("--celery-io", type=celery_pool, default=CeleryPool("threads", 100),
                   metavar="POOL:C", help="each Celery worker's pool for I/O (threads:100)")
    p.add_argument("--cpu-baseline-us", type=positive_float,
                   help="worker CPU us per no-op task to judge 'at most half of' against")
    args = p.parse_args(argv)
    args.repeat = args.repeat or (1 if args.quick else 3)
    return args


def missing_packages(systems: list[str]) -> list[str]:
    import importlib.util

    return [s for s in systems if s in NEEDS and importlib.util.find_spec(NEEDS[s]) is None]


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt  # SIGTERM as Ctrl-C: unwinds through every finally


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if missing := missing_packages(args.systems):
        print(f"benchmark: {', '.join(missing)} not installed: pip install -e '.[bench]', "
              f"or leave them out with --systems", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, _terminate)
    started = time.monotonic()

    def say(text: str) -> None:
        print(f"[{time.monotonic() - started:6.1f}s] {text}", file=sys.stderr, flush=True)

    found = guarded_run(args, say)
    if found is None:
        return 1
    found["meta"]["seconds"] = round(time.monotonic() - started, 1)
    found["meta"]["load_average_end"] = report.load_average()
    report.print_all(found["rows"], found["latency"], found["raw_round_trip"], found["targets"],
                     found["meta"])
    document = json.dumps(as_json(found), indent=2) + "\n"
    if args.json:
        args.json.write_text(document)
        print(f"figures written to {args.json}")
    return 0


def guarded_run(args: argparse.Namespace, say: Callable[[str], None]) -> dict[str, Any] | None:
    """The whole run on a private server that is always stopped; None when it failed."""
    server = EmbeddedServer()
    try:  # not `with`: a signal during start() must still stop the server
        server.start()
        os.environ["BENCH_REDIS_URL"] = server.url  # the peers' apps read it on import
        return measure_all(server, args, say)
    except BenchError as exc:
        print(f"benchmark failed: {exc}", file=sys.stderr)
    except KeyboardInterrupt:
        print("interrupted: workers and server stopped", file=sys.stderr)
        raise SystemExit(130) from None
    except redis.ConnectionError as exc:
        print(f"lost the private Redis server ({exc}); workers stopped", file=sys.stderr)
    finally:
        server.close()
    return None


if __name__ == "__main__":
    sys.exit(main())
