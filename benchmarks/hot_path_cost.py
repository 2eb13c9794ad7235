"""What one no-op task costs the worker and Redis: tasks/s, worker CPU µs per task and
Redis CPU µs per task (the server's own ``used_cpu_user + used_cpu_sys``), one worker,
concurrency 200, results off for the count (no-op tasks store their result).

    python -m benchmarks.hot_path_cost                # 20000 tasks, 3 rounds, medians
    python -m benchmarks.hot_path_cost --n 5000 --rounds 1
    git archive OLD | tar -x -C /tmp/old             # an A/B against another commit:
    python -m benchmarks.hot_path_cost --tree . --tree /tmp/old

With ``--tree`` (repeatable) the worker runs from each source tree in turn, round by
round (interleaved, so a noisy machine's drift spreads over both); the queue is filled
by this tree's producer (the wire format is the same). The fencing figures in
docs/architecture.md and the profile in docs/performance.md come from it.
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

import redis

from benchmarks import observability_cost
from benchmarks.observability_cost import BASE, CONFIGS, measure
from relier.embedded import EmbeddedServer


def redis_cpu_s(client: redis.Redis) -> float:
    """CPU seconds the server has used so far (main thread and children)."""
    info = client.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.hot_path_cost")
    parser.add_argument("--n", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--tree", action="append", type=Path,
                        help="source tree the worker runs from (default: this one)")
    args = parser.parse_args(argv)
    trees = [t.resolve() for t in args.tree or [observability_cost.ROOT]]
    figures: dict[Path, list[tuple[float, float, float]]] = {t: [] for t in trees}
    with EmbeddedServer() as server:
        client = redis.Redis.from_url(server.url)
        for round_ in range(args.rounds):
            for tree in trees:
                observability_cost.ROOT = tree  # where measure() starts the worker
                before = redis_cpu_s(client)
                rate, cpu = measure(server.url, client, args.n, CONFIGS[BASE])
                # The fill is in this interval too: the same on both sides of an A/B.
                spent = (redis_cpu_s(client) - before) / args.n * 1e6
                figures[tree].append((rate, cpu, spent))
                print(f"round {round_ + 1} {tree}: {rate:8.0f} tasks/s  {cpu:6.1f} µs worker "
                      f"CPU/task  {spent:6.1f} µs Redis CPU/task (fill included)", flush=True)
        client.close()
    print(f"\nmedian of {args.rounds} round(s), {args.n} no-op tasks, one worker:")
    for tree, rows in figures.items():
        rate, cpu, spent = (statistics.median(column) for column in zip(*rows, strict=True))
        print(f"  {tree}: {rate:8.0f} tasks/s  {cpu:6.1f} µs worker CPU/task  "
              f"{spent:6.1f} µs Redis CPU/task")


if __name__ == "__main__":
    main()
