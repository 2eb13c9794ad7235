"""What admission control and idempotency cost a producer, per call.

    python -m benchmarks.enqueue_costs [--n 5000]

Starts its own private server, then times sync pushes of the same no-op task in several
modes and counts the commands the server processed per call (from INFO stats), which
include the commands each script ran inside it. Every Relier push is one round trip (one script
call), whatever the mode.

- plain: no limit, not idempotent (the baseline);
- limited: the queue has a depth limit that is never reached (the admission check);
- rejected: the queue is full; the push raises AdmissionRejectedError;
- idempotent, first dispatch: each call's arguments are new;
- idempotent, duplicate: the call already succeeded; push returns a handle whose result
  is already there, and ``result()`` needs no further round trip;
- bulk (100 per call), plain and limited.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any

import redis

from relier import AdmissionRejectedError, App
from relier.embedded import EmbeddedServer
from relier.protocol import results
from relier.store import keys

BULK = 100


def server_commands(client: redis.Redis) -> int:
    return int(client.info("stats")["total_commands_processed"])


def measure(client: redis.Redis, n: int, action: Callable[[int], Any]) -> tuple[float, float]:
    """Microseconds per call and server commands per call (less the INFO that reads them)."""
    commands = server_commands(client)
    started = time.perf_counter()
    for i in range(n):
        action(i)
    elapsed = time.perf_counter() - started
    return elapsed / n * 1e6, (server_commands(client) - commands - 1) / n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=5000, help="calls per mode")
    n = parser.parse_args().n

    with EmbeddedServer() as server:
        client = redis.Redis.from_url(server.url)
        app = App(redis_url=server.url, queue_limits={"limited": 10 * n * BULK, "full": 1})

        @app.task(name="bench.noop", queue="plain")
        async def noop(i: int) -> None:
            return None

        @app.task(name="bench.charge", idempotent=True, queue="plain")
        async def charge(i: int) -> None:
            return None

        unguarded_app = App(redis_url=server.url, broker_memory_limit=0)
        unguarded = unguarded_app.task(name="bench.noop", queue="plain")(noop.fn)
        plain, limited, full = (noop.options(queue=q) for q in ("plain", "limited", "full"))
        full.push(0)
        for warm in (plain, limited, unguarded):
            warm.push(0)
        charge.push(-1)

        def rejected(i: int) -> None:
            try:
                full.push(i)
            except AdmissionRejectedError:
                return
            raise AssertionError("the full queue accepted a push")

        # A succeeded record for every duplicate: as a worker's ack leaves it.
        for i in range(n):
            record = keys.idempotency("bench.charge", charge.arguments.fingerprint([i], {}))
            stored = results.encode(results.success(f"id-{i}", None))
            client.hset(record, mapping={"state": "succeeded", "id": f"id-{i}", "result": stored})
        client.delete(keys.queue_list("plain"))

        def duplicate(i: int) -> None:
            charge.push(i).result(timeout=0)

        batch: list[tuple[tuple[int], dict[str, Any]]] = [((i,), {}) for i in range(BULK)]
        modes: list[tuple[str, Callable[[int], Any], int]] = [
            ("plain push", plain.push, 1),
            ("plain push, memory guard off", unguarded.push, 1),
            ("push, queue limit checked", limited.push, 1),
            ("push rejected (queue full)", rejected, 1),
            ("idempotent push, duplicate with cached result", duplicate, 1),
            ("idempotent push, first dispatch", lambda i: charge.push(n + i), 1),
            (f"bulk push of {BULK}", lambda i: plain.push_many(batch), BULK),
            (f"bulk push of {BULK}, queue limit checked", lambda i: limited.push_many(batch), BULK),
        ]
        print(f"{'mode':<48} {'us/call':>9} {'msgs/s':>9} {'Redis cmds/call':>16}")
        for name, action, per_call in modes:
            calls = max(n // per_call, 20)
            micros, commands = measure(client, calls, action)
            print(f"{name:<48} {micros:>9.1f} {1e6 / micros * per_call:>9.0f} {commands:>16.2f}")
        app.close()
        unguarded_app.close()
        client.close()


if __name__ == "__main__":
    main()
