"""What the per-delivery fencing token cost Redis: fetch + ack of N no-op messages with
the scripts of a commit that still had it, against this tree's, on one private server.

    python -m benchmarks.fence_cost --old f316f28 --n 20000 --rounds 5

Redis CPU is read from ``INFO commandstats`` (``usec`` of EVALSHA: time spent running
scripts, nothing else), so a noisy machine's other processes do not blur it. Messages
are real Celery v2 envelopes from ``relier.protocol.message.build``; each round fetches
them 32 at a time (as the fetcher does) and acks each one, results off.
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
from collections.abc import Callable

import redis

from relier.embedded import EmbeddedServer
from relier.protocol import message as wire
from relier.store import keys, scripts

QUEUE = "fence_cost"
#: A variant: fetch (the messages taken) and ack (one message, its task id).
Variant = tuple[Callable[[], list[bytes]], Callable[[bytes, str], None]]
WORKER = "bench"


def _old_source(rev: str, name: str) -> str:
    def show(path: str) -> str:
        return subprocess.run(["git", "show", f"{rev}:{path}"], check=True,
                              capture_output=True, text=True).stdout
    text = show(f"relier/store/lua/{name}.lua")
    return re.sub(r"^--!include (\w+)$",
                  lambda m: show(f"relier/store/lua/lib/{m.group(1)}.lua"), text,
                  flags=re.MULTILINE)


def _evalsha_usec(client: redis.Redis) -> float:
    stats = client.info("commandstats").get("cmdstat_evalsha", {})
    return float(stats.get("usec", 0))


def _fetch_ack_new(client: redis.Redis) -> Variant:
    fetch_sha = client.script_load(scripts.source("fetch"))
    ack_sha = client.script_load(scripts.source("ack"))
    group = [keys.processing(QUEUE, WORKER), keys.stats(QUEUE), *keys.queue_lists(QUEUE)]

    def fetch() -> list[bytes]:
        flat = client.evalsha(fetch_sha, len(group), *group, 32)
        return flat[0::2]

    def ack(message: bytes, tid: str) -> None:
        client.evalsha(ack_sha, 2, keys.processing(QUEUE, WORKER), keys.result(tid),
                       message, tid, "", 0, 0)
    return fetch, ack


def _fetch_ack_old(client: redis.Redis, rev: str) -> Variant:
    fetch_sha = client.script_load(_old_source(rev, "fetch"))
    ack_sha = client.script_load(_old_source(rev, "ack"))
    fences = f"relier:{{{QUEUE}}}:fences"
    group = [keys.processing(QUEUE, WORKER), fences, keys.stats(QUEUE), *keys.queue_lists(QUEUE)]
    tokens: dict[bytes, int] = {}

    def fetch() -> list[bytes]:
        flat = client.evalsha(fetch_sha, len(group), *group, 32)
        for i in range(0, len(flat), 3):
            tokens[flat[i]] = int(flat[i + 1])
        return flat[0::3]

    def ack(message: bytes, tid: str) -> None:
        client.evalsha(ack_sha, 3, keys.processing(QUEUE, WORKER), fences, keys.result(tid),
                       message, str(tokens.pop(message)), tid, "", 0, 0)
    return fetch, ack


def one_round(client: redis.Redis, n: int, variant: Variant) -> float:
    """Redis µs per message (script time) to fetch and ack ``n`` messages."""
    client.flushdb()
    fetch, ack = variant
    messages = [wire.encode(wire.build("bench.noop", [], {}, queue=QUEUE)) for _ in range(n)]
    for start in range(0, n, 1000):
        client.lpush(QUEUE, *messages[start:start + 1000])
    ids = {m: wire.decode(m).id for m in messages}
    before = _evalsha_usec(client)
    while taken := fetch():
        for message in taken:
            ack(message, ids[message])
    return (_evalsha_usec(client) - before) / n


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.fence_cost")
    parser.add_argument("--old", required=True, help="a commit whose scripts had the token")
    parser.add_argument("--n", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)
    figures: dict[str, list[float]] = {"token (old)": [], "processing list only": []}
    with EmbeddedServer() as server:
        client = redis.Redis.from_url(server.url)
        old, new = _fetch_ack_old(client, args.old), _fetch_ack_new(client)
        for _ in range(args.rounds):
            figures["token (old)"].append(one_round(client, args.n, old))
            figures["processing list only"].append(one_round(client, args.n, new))
        client.close()
    print(f"Redis script time per message, fetch + ack, {args.n} messages, "
          f"median of {args.rounds}:")
    for name, values in figures.items():
        print(f"  {name:<22} {statistics.median(values):6.2f} µs "
              f"(min {min(values):.2f}, max {max(values):.2f})")


if __name__ == "__main__":
    main()
