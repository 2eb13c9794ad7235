"""What observability costs a worker: no-op task throughput with metrics and events off
and on, on one private server, in the same run.

    python -m benchmarks.observability_cost            # 20000 tasks, 3 rounds
    python -m benchmarks.observability_cost --n 5000 --rounds 1

Each measurement fills the queue first, then starts ONE worker (concurrency 200, logs at
the default level, sent to /dev/null) and times it from its first fetch until the queue
and its processing list are empty. Configurations are interleaved round by round so that
drift of a noisy machine spreads over all of them; the median of the rounds is reported.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import redis

from benchmarks.common import QUEUE
from relier.embedded import EmbeddedServer, free_port
from relier.protocol import keys

ROOT = Path(__file__).resolve().parent.parent
CONFIGS: dict[str, dict[str, str]] = {
    "metrics off, events off": {},
    "metrics on": {"RELIER_METRICS_PORT": "auto"},
    "metrics on, events on": {"RELIER_METRICS_PORT": "auto", "RELIER_EVENTS": "1"},
}


def fill(url: str, n: int) -> None:
    os.environ["BENCH_REDIS_URL"] = url
    from benchmarks import relier_app

    relier_app.app.configure(redis_url=url)
    for start in range(0, n, 500):
        relier_app.noop.push_many([((), {})] * min(500, n - start))
    relier_app.app.close()


def fetched(client: redis.Redis) -> int:
    return int(client.hget(keys.stats(QUEUE), "fetched") or 0)


def cpu_seconds(pid: int) -> float:
    """User + system CPU a process has used (Linux)."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(url: str, client: redis.Redis, n: int,
            extra_env: dict[str, str]) -> tuple[float, float]:
    """(tasks per second, worker CPU microseconds per task)."""
    client.flushdb()
    fill(url, n)
    env = {**os.environ, **{k: str(free_port()) if v == "auto" else v
                            for k, v in extra_env.items()}}
    worker = subprocess.Popen(
        [sys.executable, "-m", "relier", "worker", "-A", "benchmarks.relier_app:app",
         "-Q", QUEUE, "-c", "200", "--redis-url", url],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while fetched(client) == 0:
            if time.monotonic() > deadline or worker.poll() is not None:
                raise RuntimeError("the worker did not start")
            time.sleep(0.0005)
        started, cpu = time.perf_counter(), cpu_seconds(worker.pid)
        while True:
            waiting = client.llen(QUEUE)
            holding = sum(int(client.llen(k)) for k in client.scan_iter(
                f"relier:{{{QUEUE}}}:processing:*"))
            if fetched(client) >= n and waiting == 0 and holding == 0:
                elapsed = time.perf_counter() - started
                return n / elapsed, (cpu_seconds(worker.pid) - cpu) / n * 1e6
            time.sleep(0.002)
    finally:
        worker.terminate()
        worker.wait(30)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.observability_cost")
    parser.add_argument("--n", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    with EmbeddedServer() as server:
        client = redis.Redis.from_url(server.url)
        rates: dict[str, list[float]] = {name: [] for name in CONFIGS}
        cpus: dict[str, list[float]] = {name: [] for name in CONFIGS}
        for round_ in range(args.rounds):
            for name, env in CONFIGS.items():
                rate, cpu = measure(server.url, client, args.n, env)
                rates[name].append(rate)
                cpus[name].append(cpu)
                print(f"round {round_ + 1}: {name:<24} {rate:8.0f} tasks/s "
                      f"{cpu:6.1f} µs CPU/task", flush=True)
        base = statistics.median(cpus["metrics off, events off"])
        print(f"\nmedian of {args.rounds} round(s), {args.n} no-op tasks, one worker:")
        for name in CONFIGS:
            rate, cpu = statistics.median(rates[name]), statistics.median(cpus[name])
            print(f"  {name:<24} {rate:8.0f} tasks/s  {cpu:6.1f} µs worker CPU/task "
                  f"({cpu - base:+.1f} µs)")
        client.close()


if __name__ == "__main__":
    main()
