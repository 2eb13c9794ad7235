"""Where a no-op task's time goes: one worker drains N no-op tasks under py-spy, and the
samples are grouped by what they were doing (docs/performance.md).

    pip install py-spy
    python -m benchmarks.profile_noop --n 10000                    # this tree
    git archive OLD | tar -x -C /tmp/old
    python -m benchmarks.profile_noop --n 10000 --tree /tmp/old    # another commit's worker

Prints tasks/s, worker CPU µs per task (``/proc``), Redis CPU µs per task while the
worker drained (the server's ``used_cpu_user + used_cpu_sys``; the fill is not in it)
and the share of samples per group, each also as µs per task. py-spy samples at 250 Hz
and slows the worker a little; compare runs made the same way.
"""

from __future__ import annotations

import argparse
import collections
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import redis

from benchmarks.common import QUEUE
from benchmarks.observability_cost import ROOT, cpu_seconds, fetched, fill
from relier.embedded import EmbeddedServer

#: A sample belongs to the first group any of whose marks is in its stack.
GROUPS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("outcome log line (logging)", ("logging/__init__.py", "relier/logs.py")),
    ("observers: recorder, metrics, events", ("relier/observability/", "prometheus_client")),
    ("redis-py: commands, pipelines, replies, sockets", ("redis/",)),
    ("message decode/encode (msgspec, envelope)", ("relier/protocol/", "msgspec")),
    ("task call: timeouts, cancel scope, context", ("relier/runtime/deadlines.py",
                                                    "relier/context.py")),
    ("executor decisions + settle calls", (
        "relier/runtime/executor.py", "relier/runtime/delivery.py", "relier/store/",
        "relier/runtime/retry.py", "relier/runtime/progress.py", "relier/runtime/versioning.py",
        "relier/validation.py")),
    ("fetcher, capacity, intake", ("relier/runtime/fetcher.py", "relier/runtime/capacity.py",
                                   "relier/runtime/intake.py")),
    ("event loop + anyio plumbing", ("asyncio/", "anyio/", "uvloop")),
)
OTHER = "other (heartbeat, watchdog threads; interpreter)"


def group_samples(raw_path: Path) -> collections.Counter[str]:
    """Samples per group, from py-spy's ``--format raw`` (collapsed stacks) output."""
    counts: collections.Counter[str] = collections.Counter()
    for line in raw_path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        name = next((g for g, marks in GROUPS if any(m in stack for m in marks)), OTHER)
        counts[name] += int(count)
    return counts


def _drained(client: redis.Redis, n: int) -> bool:
    held = sum(int(client.llen(k)) for k in client.scan_iter(
        f"relier:{{{QUEUE}}}:processing:*"))
    return fetched(client) >= n and client.llen(QUEUE) == 0 and held == 0


def _redis_cpu(client: redis.Redis) -> float:
    info = client.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def start_drain(tree: Path, url: str, client: redis.Redis) -> subprocess.Popen[bytes]:
    """A worker of the source tree ``tree`` draining the pre-filled queue (concurrency
    200, tracing off), returned once it has taken its first message."""
    worker = subprocess.Popen(
        [sys.executable, "-m", "relier", "worker", "-A", "benchmarks.relier_app:app",
         "-Q", QUEUE, "-c", "200", "--redis-url", url],
        cwd=tree, env={**os.environ, "RELIER_TRACING": "0"},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while fetched(client) == 0:
            time.sleep(0.001)
    except BaseException:
        worker.kill()
        raise
    return worker


def profile(n: int, tree: Path, out: Path) -> tuple[float, float, float]:
    """(tasks/s, worker CPU µs/task, Redis CPU µs/task) of one profiled drain."""
    with EmbeddedServer() as server:
        client = redis.Redis.from_url(server.url)
        fill(server.url, n)
        worker = start_drain(tree, server.url, client)
        try:
            spy = subprocess.Popen(["py-spy", "record", "-p", str(worker.pid), "-r", "250",
                                    "-f", "raw", "-o", str(out), "--nonblocking"],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            redis0, cpu0, t0 = _redis_cpu(client), cpu_seconds(worker.pid), time.perf_counter()
            while not _drained(client, n):
                time.sleep(0.005)
            elapsed = time.perf_counter() - t0
            cpu, spent = cpu_seconds(worker.pid) - cpu0, _redis_cpu(client) - redis0
            spy.send_signal(2)
            spy.wait(30)
        finally:
            worker.terminate()
            worker.wait(30)
        client.close()
    return n / elapsed, cpu / n * 1e6, spent / n * 1e6


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.profile_noop")
    parser.add_argument("--n", type=int, default=10000)
    parser.add_argument("--tree", type=Path, default=ROOT)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as scratch:
        out = Path(scratch) / "samples.txt"
        rate, cpu, spent = profile(args.n, args.tree.resolve(), out)
        counts = group_samples(out)
    print(f"{rate:.0f} tasks/s, worker CPU {cpu:.1f} µs/task, Redis CPU {spent:.1f} µs/task")
    total = sum(counts.values()) or 1
    for name, samples in counts.most_common():
        print(f"  {samples / total * 100:5.1f}%  ~{samples / total * cpu:6.1f} µs/task  {name}")


if __name__ == "__main__":
    main()
