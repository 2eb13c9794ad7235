"""What canvas costs: a long chain's time per step, and a chord's time to call back,
on a Relier worker, with the same steps on a Celery solo worker for comparison.

    python -m benchmarks.canvas_cost                 # 200-step chain, chord of 200
    python -m benchmarks.canvas_cost --n 50

A chain is sequential by nature: each step is sent by the settle of the one before, so
its time per step is one fetch, run and settle round. One private server; each side gets
one worker (Relier: default concurrency; Celery: ``-P solo``), started before the clock.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import relier
from relier.embedded import EmbeddedServer
from tests.taskapps import interop_relier
from tests.taskapps.interop_celery import URL_ENV, make_app

ROOT = Path(__file__).resolve().parent.parent
QUEUE = "bench-canvas"


def _start(args: list[str], env: dict[str, str], ready: str) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(args, cwd=ROOT, env={**os.environ, **env}, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)
    assert proc.stdout is not None
    for line in proc.stdout:
        if ready.encode() in line:
            return proc
    raise RuntimeError(f"worker exited before {ready!r}")


def _timed(run: Callable[[], object]) -> float:
    started = time.perf_counter()
    run()
    return time.perf_counter() - started


def relier_side(url: str, n: int) -> tuple[float, float]:
    worker = _start([sys.executable, "-m", "relier", "worker", "-A",
                     "tests.taskapps.interop_relier:app", "--redis-url", url, "-Q", QUEUE],
                    {}, "consuming")
    app = interop_relier.app
    app.configure(redis_url=url)
    add = interop_relier.add
    try:
        steps = [add.s(0, 0).set(queue=QUEUE)] + [add.s(1).set(queue=QUEUE)] * (n - 1)
        chain_s = _timed(lambda: relier.chain(*steps).push().result(timeout=600))
        header = [add.s(i, i).set(queue=QUEUE) for i in range(n)]
        body = interop_relier.tsum.s().set(queue=QUEUE)
        chord_s = _timed(lambda: relier.chord(header, body).push().result(timeout=600))
        return chain_s, chord_s
    finally:
        worker.kill()
        app.close()


def celery_side(url: str, n: int) -> tuple[float, float]:
    from celery import chain, chord

    worker = _start([sys.executable, "-m", "celery", "-A", "tests.taskapps.interop_celery",
                     "worker", "-P", "solo", "-Q", QUEUE, "--without-mingle",
                     "--without-gossip", "--without-heartbeat", "-l", "info"],
                    {URL_ENV: url}, " ready.")
    app = make_app(url, main="bench_canvas")
    try:
        mul = app.signature("interop.celery_mul", queue=QUEUE)
        steps = [mul.clone((1, 1))] + [mul.clone((1,))] * (n - 1)
        chain_s = _timed(lambda: chain(*steps).apply_async().get(timeout=600))
        header = [mul.clone((i, 1)) for i in range(n)]
        body = app.signature("interop.celery_tsum", queue=QUEUE)
        chord_s = _timed(lambda: chord(header, body).apply_async().get(timeout=600))
        return chain_s, chord_s
    finally:
        worker.kill()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=200, help="chain steps and chord size")
    n = parser.parse_args().n
    with EmbeddedServer() as server:
        for name, side in (("relier", relier_side), ("celery", celery_side)):
            chain_s, chord_s = side(server.url_for(0), n)
            print(f"{name:7} chain of {n}: {chain_s:6.2f} s ({chain_s / n * 1000:5.1f} ms/step)"
                  f"   chord of {n}: {chord_s:6.2f} s")


if __name__ == "__main__":
    main()
