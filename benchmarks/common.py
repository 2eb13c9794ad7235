"""What every side of the benchmarks shares; imports none of the systems measured."""

from __future__ import annotations

import os

#: The one queue every benchmark uses, on both sides.
QUEUE = "bench"
#: Seconds each I/O-bound task waits.
IO_SLEEP_S = 0.01
#: The list ``bench.stamp`` tasks append ``"<index> <time.time() at start>"`` to.
STARTS_KEY = "bench:starts"
#: Where peers without an in-flight record in Redis (taskiq) count finished tasks.
DONE_KEY = "bench:done"


class BenchError(RuntimeError):
    """A measurement could not be made (timeout, dead worker, wrong count)."""


def redis_url() -> str:
    """The private server's URL, which ``benchmarks.run`` puts in ``BENCH_REDIS_URL``."""
    url = os.environ.get("BENCH_REDIS_URL")
    if not url:
        raise RuntimeError("BENCH_REDIS_URL is not set: run the benchmarks with "
                           "`python -m benchmarks.run`, which starts its own server")
    return url
