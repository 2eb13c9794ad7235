"""Worker CPU per no-op task for several source trees, runs alternated, without py-spy.

profile_noop.py says where the time goes; this compares trees (a commit before and
after a change) as fairly as a shared machine allows: each round runs every tree once,
in turn, so a change in the machine's load hits them alike; the medians are printed.

    git archive OLD | tar -x -C /tmp/old
    python -m benchmarks.cpu_ab --n 30000 --rounds 3 /tmp/old .

Each run: a private server, N no-op tasks pushed first, one worker (concurrency 200,
tracing off) started from the tree; the worker's CPU (user + system, ``/proc``) from its
first take until the queue and its processing lists are empty, divided by N.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import redis

from benchmarks.observability_cost import cpu_seconds, fill
from benchmarks.profile_noop import _drained, start_drain
from relier.embedded import EmbeddedServer


def measure(tree: Path, n: int) -> tuple[float, float]:
    """(worker CPU µs per task, tasks/s) of one drain by a worker started from ``tree``."""
    with EmbeddedServer() as server:
        client = redis.Redis.from_url(server.url)
        fill(server.url, n)
        worker = start_drain(tree, server.url, client)
        try:
            cpu0, t0 = cpu_seconds(worker.pid), time.perf_counter()
            while not _drained(client, n):
                time.sleep(0.005)
            elapsed, cpu = time.perf_counter() - t0, cpu_seconds(worker.pid) - cpu0
        finally:
            worker.terminate()
            worker.wait(30)
        client.close()
    return cpu / n * 1e6, n / elapsed


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.cpu_ab")
    parser.add_argument("--n", type=int, default=30000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("trees", nargs="+", type=Path)
    args = parser.parse_args(argv)
    runs: dict[Path, list[tuple[float, float]]] = {t: [] for t in args.trees}
    for _ in range(args.rounds):
        for tree in args.trees:
            cpu, rate = measure(tree.resolve(), args.n)
            runs[tree].append((cpu, rate))
            print(f"{tree}: {cpu:.1f} µs/task, {rate:.0f} tasks/s", flush=True)
    for tree, figures in runs.items():
        cpus, rates = [c for c, _ in figures], [r for _, r in figures]
        print(f"{tree}: median {statistics.median(cpus):.1f} µs/task "
              f"({min(cpus):.1f} – {max(cpus):.1f}), {statistics.median(rates):.0f} tasks/s")


if __name__ == "__main__":
    main()
