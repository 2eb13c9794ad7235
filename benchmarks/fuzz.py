"""The long fuzz run: thousands of malformed messages of every shape, interleaved with
good tasks, pushed onto the queue of one real worker process.

Run from the repository root: python -m benchmarks.fuzz [--batches 2000]

Uses the strategies of tests/malformed.py (hypothesis; a test dependency) and the tasks of
tests/taskapps/basic.py, against a private server it starts and stops. Prints the figures
docs/guarantees.md quotes: malformed count, crashes, good tasks done, DLQ entries.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import redis
from hypothesis import HealthCheck, Phase, given, settings

from relier.embedded import EmbeddedServer
from relier.handle import TaskHandle
from relier.store import keys
from tests.malformed import QUEUE, WORKER_ENV, Case, batches
from tests.taskapps import basic

ROOT = Path(__file__).resolve().parent.parent


def generate(count: int) -> list[list[Case]]:
    """``count`` batches drawn by hypothesis (generation only: nothing to shrink)."""
    drawn: list[list[Case]] = []

    @settings(max_examples=count, deadline=None, database=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(batch=batches)
    def collect(batch: list[Case]) -> None:
        drawn.append(batch)

    collect()
    return drawn


def start_worker(url: str, log: Any) -> subprocess.Popen[bytes]:
    worker = subprocess.Popen(
        [sys.executable, "-m", "relier", "worker", "-A", "tests.taskapps.basic:app",
         "--redis-url", url, "-Q", QUEUE],
        cwd=ROOT, env={**os.environ, **WORKER_ENV}, stdout=log, stderr=subprocess.STDOUT,
        start_new_session=True)
    return worker


def wait_for(condition: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(0.05)


def dlq_entries(url: str) -> list[dict[str, Any]]:
    done = subprocess.run([sys.executable, "-m", "relier", "dlq", "list", "--json", "--limit",
                           "0", "--redis-url", url], capture_output=True, text=True,
                          timeout=600, check=True, cwd=ROOT)
    entries: list[dict[str, Any]] = json.loads(done.stdout)
    return entries


def run(batch_count: int) -> dict[str, Any]:
    drawn = generate(batch_count)
    cases = [case for batch in drawn for case in batch]
    bad = [c for c in cases if c.expected is None]
    good = [c for c in cases if c.expected is not None]
    with EmbeddedServer() as server, tempfile.TemporaryFile() as log:
        client = redis.Redis.from_url(server.url)
        basic.app.configure(redis_url=server.url)
        worker = start_worker(server.url, log)
        try:
            pid = worker.pid
            wait_for(lambda: client.hlen(keys.WORKERS) == 1, 60, "the worker to register")
            started = time.monotonic()
            with client.pipeline(transaction=False) as pipe:
                for case in cases:
                    pipe.lpush(QUEUE, case.raw)
                pipe.execute()
            done = sum(TaskHandle(basic.app, c.task_id or "").result(timeout=600) == c.expected
                       for c in good)
            wait_for(lambda: client.llen(keys.dead_letters(QUEUE)) >= len(bad), 600,
                     "every malformed message in the DLQ")
            elapsed = time.monotonic() - started
            alive = worker.poll() is None and worker.pid == pid
            entries = dlq_entries(server.url)
        finally:
            worker.kill()
            worker.wait(10)
            basic.app.close()
            client.close()
        log.seek(0)
        starts = log.read().count(b"consuming")
    return {
        "malformed": len(bad),
        "shapes": len({c.shape for c in bad}),
        "crashes": 0 if alive and starts == 1 else 1,
        "good_done": done,
        "good_total": len(good),
        "dlq_entries": len(entries),
        "dlq_entries_with_reason": sum(bool(e["reason"] and e["error"]) for e in entries),
        "reasons": dict(collections.Counter(e["reason"] for e in entries)),
        "seconds": round(elapsed, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=2000,
                        help="hypothesis examples; each is 1-4 malformed + 1-2 good messages")
    options = parser.parse_args()
    figures = run(options.batches)
    print(f"malformed {figures['malformed']} ({figures['shapes']} shapes), "
          f"crashes {figures['crashes']}, good done {figures['good_done']}/"
          f"{figures['good_total']}, DLQ entries {figures['dlq_entries']} "
          f"(with a reason: {figures['dlq_entries_with_reason']}), "
          f"in {figures['seconds']} s")
    print(json.dumps(figures, indent=2))
    ok = (figures["crashes"] == 0 and figures["good_done"] == figures["good_total"]
          and figures["dlq_entries"] == figures["malformed"])
    raise SystemExit(0 if ok else 1)


if __name__ == "__main__":
    main()
