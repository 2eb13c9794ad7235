"""Time from `kill -9` of a worker to its task starting again elsewhere, at default settings.

Run: python -m benchmarks.phoenix [--runs 3]

Celery on Redis has no heartbeat-based recovery: a task taken by a killed worker
(acks_late) waits in kombu's `unacked` hash until `visibility_timeout` (default 3600 s)
passes and a restore sweep runs, so the same kill costs about an hour with defaults
(tests/vectors/SPEC.md §5: 7.0 s only after cutting the timeout to 5 s). That figure is
printed for comparison, not measured here: measuring it would take an hour per run.
"""

from __future__ import annotations

import argparse
import signal
import statistics
import tempfile
import time

import redis

from relier.demo import tasks
from relier.demo.runner import DemoWorker, task_starts, wait_until
from relier.embedded import EmbeddedServer


def one_kill(url: str, client: redis.Redis, log_dir: str) -> float:
    workers = [DemoWorker(name, url, log_dir) for name in ("A", "B")]
    try:
        for worker in workers:
            worker.wait_ready()
        handle = tasks.nightly_report.push(30.0)
        wait_until(lambda: task_starts(client, handle.id), 15, "the task to start")
        first_worker, _ = task_starts(client, handle.id)[0]
        victim = next(w for w in workers if w.id == first_worker)
        victim.process.send_signal(signal.SIGKILL)
        killed_at = time.time()
        wait_until(lambda: len(task_starts(client, handle.id)) >= 2, 60, "the resurrection")
        return task_starts(client, handle.id)[1][1] - killed_at
    finally:
        for worker in workers:
            worker.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    options = parser.parse_args()
    with EmbeddedServer() as server, tempfile.TemporaryDirectory() as log_dir:
        client = redis.Redis.from_url(server.url)
        tasks.app.configure(redis_url=server.url)
        figures = []
        for run in range(options.runs):
            client.flushdb()
            figures.append(one_kill(server.url, client, log_dir))
            print(f"run {run + 1}: task restarted {figures[-1]:.2f} s after kill -9")
        client.close()
        tasks.app.close()
    print(f"relier (heartbeat_interval 2 s, heartbeat_ttl 6 s): "
          f"min {min(figures):.2f} s, median {statistics.median(figures):.2f} s, "
          f"max {max(figures):.2f} s over {len(figures)} kills")
    print("celery 5.7 on Redis (visibility_timeout 3600 s, acks_late): ~3600 s + sweep "
          "(not measured; see the module docstring)")


if __name__ == "__main__":
    main()
