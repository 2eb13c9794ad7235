"""What one no-op task costs the worker and Redis: tasks/s, worker CPU µs per task and
Redis CPU µs per task (the server's own ``used_cpu_user + used_cpu_sys``), one worker,
concurrency 200, results off for the count (no-op tasks store their result).

    python -m benchmarks.hot_path_cost                # 20000 tasks, 3 rounds, medians
    python -m benchmarks.hot_path_cost --n 5000 --rounds 1

Run it on two commits to compare a change of the hot path (fetch, settle scripts):
the figures in docs/architecture.md (fencing) and docs/performance.md come from it.
"""

from __future__ import annotations

import argparse
import statistics

import redis

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
    args = parser.parse_args(argv)
    rates, worker_us, redis_us = [], [], []
    with EmbeddedServer() as server:
        client = redis.Redis.from_url(server.url)
        for round_ in range(args.rounds):
            before = redis_cpu_s(client)
            rate, cpu = measure(server.url, client, args.n, CONFIGS[BASE])
            # The fill is in this interval too: it is the same on both sides of an A/B.
            spent = (redis_cpu_s(client) - before) / args.n * 1e6
            rates.append(rate)
            worker_us.append(cpu)
            redis_us.append(spent)
            print(f"round {round_ + 1}: {rate:8.0f} tasks/s  {cpu:6.1f} µs worker CPU/task  "
                  f"{spent:6.1f} µs Redis CPU/task (fill included)", flush=True)
        client.close()
    print(f"median of {args.rounds}: {statistics.median(rates):8.0f} tasks/s  "
          f"{statistics.median(worker_us):6.1f} µs worker CPU/task  "
          f"{statistics.median(redis_us):6.1f} µs Redis CPU/task (fill included)")


if __name__ == "__main__":
    main()
