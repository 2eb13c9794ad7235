"""What observability costs a worker: no-op task throughput with metrics, events and
OpenTelemetry tracing off and on, on one private server, in the same run; and what
tracing costs a producer per ``push()``.

    python -m benchmarks.observability_cost            # 20000 tasks, 3 rounds
    python -m benchmarks.observability_cost --n 5000 --rounds 1

Tracing: "off" is ``RELIER_TRACING=0``; "on, no SDK" is the default with only the API
installed and no provider configured (spans are no-ops); "on, SDK" records every span
(benchmarks/traced_app.py: an SDK provider with a batch processor whose exporter drops
the spans), and the messages carry a ``traceparent`` from a traced producer.

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
from types import SimpleNamespace

import redis

from benchmarks.common import QUEUE
from relier.embedded import EmbeddedServer, free_port
from relier.store import keys

ROOT = Path(__file__).resolve().parent.parent
BASE = "metrics off, events off"
#: Worker environment per configuration; ``BENCH_APP`` picks the worker's -A.
CONFIGS: dict[str, dict[str, str]] = {
    BASE: {"RELIER_TRACING": "0"},
    "metrics on": {"RELIER_METRICS_PORT": "auto", "RELIER_TRACING": "0"},
    "metrics on, events on": {"RELIER_METRICS_PORT": "auto", "RELIER_EVENTS": "1",
                              "RELIER_TRACING": "0"},
    "tracing on, no SDK": {},
    "tracing on, SDK": {"BENCH_APP": "benchmarks.traced_app:app", "BENCH_TRACED_FILL": "1"},
}


def fill(url: str, n: int, traced: bool = False) -> None:
    """Push ``n`` no-op tasks (``traced``: from a producer that records spans, so that
    every message carries a trace context for the worker to continue)."""
    os.environ["BENCH_REDIS_URL"] = url
    from benchmarks import relier_app
    from relier.observability import tracing

    relier_app.app.configure(redis_url=url)
    tracing.use_tracer_provider(_sdk_provider() if traced else None)
    for start in range(0, n, 500):
        relier_app.noop.push_many([((), {})] * min(500, n - start))
    tracing.use_tracer_provider(None)
    relier_app.app.close()


def _sdk_provider() -> object:
    from benchmarks.otel_sdk import sdk_provider

    return sdk_provider()


def push_cost(url: str, client: redis.Redis, n: int) -> dict[str, float]:
    """Microseconds per single ``push()`` with tracing off, on without an SDK, on with one."""
    from benchmarks import relier_app
    from relier.observability import tracing

    costs: dict[str, float] = {}
    for name, setting, provider in (("off", False, None), ("on, no SDK", True, None),
                                    ("on, SDK", True, _sdk_provider())):
        client.flushdb()
        relier_app.app.configure(redis_url=url, tracing=setting)
        tracing.use_tracer_provider(provider)
        started = time.perf_counter()
        for _ in range(n):
            relier_app.noop.push()
        costs[name] = (time.perf_counter() - started) / n * 1e6
        tracing.use_tracer_provider(None)
        relier_app.app.close()
    relier_app.app.configure(tracing=True)
    return costs


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
    fill(url, n, traced=bool(extra_env.get("BENCH_TRACED_FILL")))
    env = {**os.environ, **{k: str(free_port()) if v == "auto" else v
                            for k, v in extra_env.items()}}
    worker = subprocess.Popen(
        [sys.executable, "-m", "relier", "worker", "-A",
         extra_env.get("BENCH_APP", "benchmarks.relier_app:app"),
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


def hook_cost(n: int) -> dict[str, float]:
    """Microseconds per push hook + run hook (entered and left, as a push and a run use
    them), in this process: the tracing cost alone, without the noise of a worker."""
    from relier.observability import tracing
    from relier.protocol import message as wire
    from relier.runtime.delivery import Delivery, Settled

    message = wire.build("bench.noop", [], {}, queue=QUEUE)
    # Never settled through Redis here: only its outcome is read, as after a run.
    delivery = Delivery(raw=b"", queue=QUEUE, worker_id="bench",
                        settler=None)  # type: ignore[arg-type]
    delivery.settled = Settled("ack", True, message, "success")
    sent = [SimpleNamespace(task_id=message.id)]
    costs: dict[str, float] = {}
    for name, on, provider in (("off", False, None), ("on, no SDK", True, None),
                               ("on, SDK", True, _sdk_provider())):
        tracing.use_tracer_provider(provider)
        started = time.perf_counter()
        for _ in range(n):
            with tracing.push_span("bench.noop", QUEUE, on) as push:
                message.headers.update(push.headers)
                push.sent(sent)
            with tracing.run_span(message, delivery, "bench", on):
                pass
        costs[name] = (time.perf_counter() - started) / n * 1e6
        tracing.use_tracer_provider(None)
    return costs


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.observability_cost")
    parser.add_argument("--n", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--pushes", type=int, default=3000,
                        help="single pushes per tracing configuration (0 skips)")
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
        base = statistics.median(cpus[BASE])
        print(f"\nmedian of {args.rounds} round(s), {args.n} no-op tasks, one worker:")
        for name in CONFIGS:
            rate, cpu = statistics.median(rates[name]), statistics.median(cpus[name])
            print(f"  {name:<24} {rate:8.0f} tasks/s  {cpu:6.1f} µs worker CPU/task "
                  f"({cpu - base:+.1f} µs)")
        print("\ntracing hooks alone (one push span + one run span), in process:")
        for name, cost in hook_cost(20000).items():
            print(f"  tracing {name:<14} {cost:7.1f} µs")
        if args.pushes:
            print(f"\nproducer, {args.pushes} single push() calls per configuration:")
            for name, cost in push_cost(server.url, client, args.pushes).items():
                print(f"  tracing {name:<14} {cost:7.1f} µs/push")
        client.close()


if __name__ == "__main__":
    main()
