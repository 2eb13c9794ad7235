"""A process that contends for a lock: ``python -m tests.taskapps.lock_contender URL N``.

Each of N rounds takes the lock, does a deliberately non-atomic read-modify-write of a
counter (it would lose updates without mutual exclusion) and notes its fencing token.
"""

from __future__ import annotations

import sys
import time

from relier import App

COUNTER = "test:lock:counter"
TOKENS = "test:lock:tokens"


def main(url: str, rounds: int) -> None:
    app = App(redis_url=url)
    client = app.sync_client()
    for _ in range(rounds):
        with app.lock("shared", ttl=10, timeout=60) as lock:
            value = int(client.get(COUNTER) or 0)
            time.sleep(0.005)
            client.set(COUNTER, value + 1)
            client.rpush(TOKENS, lock.token or 0)
    app.close()


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
