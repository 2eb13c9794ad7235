"""The four task systems measured, behind one small interface each.

A system knows how to fill the queue with its own producer (untimed), how to tell from
Redis how much work is still queued and in flight, how to start its worker (two worker
processes), and how to push a stamp task for the latency runs. Every worker runs with
results off.
"""

from __future__ import annotations

import asyncio
import importlib
import shlex
import sys
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, ClassVar

import redis

from benchmarks.common import DONE_KEY, QUEUE, BenchError

#: Worker processes per system.
PROCESSES = 2
#: Tasks per Relier push_many/apush_many call (prefill and the timed bulk runs).
BULK_BATCH = 500
#: Concurrent kiq() calls while filling taskiq's queue.
TASKIQ_FILL_WIDTH = 100

# Relier: in flight = messages in the workers' processing lists; a message leaves its
# list in the ack script, after the task ran.
RELIER_PENDING = """
local inflight = 0
for _, key in ipairs(redis.call('KEYS', ARGV[1])) do
  inflight = inflight + redis.call('LLEN', key)
end
return {redis.call('LLEN', KEYS[1]), inflight}
"""
# Celery (kombu): in flight = the ``unacked`` hash; with acks late an entry leaves it
# after the task ran. dramatiq: the ``.msgs`` hash holds a message until its ack.
LEN_AND_HLEN = "return {redis.call('LLEN', KEYS[1]), redis.call('HLEN', KEYS[2])}"
# taskiq: the flushed completion count; "in flight" is what was taken but not finished.
LEN_AND_GET = "return {redis.call('LLEN', KEYS[1]), redis.call('GET', KEYS[2]) or '0'}"


@dataclass(frozen=True)
class CeleryPool:
    """A Celery worker pool choice, written ``pool:concurrency`` (``threads:4``)."""

    pool: str
    concurrency: int

    @classmethod
    def parse(cls, text: str) -> CeleryPool:
        pool, _, count = text.partition(":")
        if pool not in {"prefork", "threads", "solo", "gevent", "eventlet"}:
            raise ValueError(f"unknown Celery pool {pool!r}")
        try:
            return cls(pool, int(count or "1"))
        except ValueError:
            raise ValueError(f"bad concurrency in {text!r}") from None

    def __str__(self) -> str:
        return f"{self.pool}:{self.concurrency}"


def python_argv(*args: str) -> list[str]:
    return [sys.executable, "-m", *args]


def together(argvs: list[list[str]]) -> list[str]:
    """One command that runs several workers in one process group and waits for them."""
    return ["sh", "-c", " & ".join(shlex.join(a) for a in argvs) + " & wait"]


class System:
    """What the benchmark needs from a task system; each subclass is one system."""

    name = ""

    def __init__(self, client: redis.Redis, url: str) -> None:
        self.client = client
        self.url = url

    def fill(self, task: str, n: int) -> None:
        """Put ``n`` calls of ``bench.<task>`` on the queue with the system's producer."""
        raise NotImplementedError

    def pending(self, n: int) -> tuple[int, int]:
        """(queued, in flight) right now, in one round trip."""
        raise NotImplementedError

    def argv(self, workload: str) -> list[str]:
        """The command that starts the system's workers for ``noop``/``io``/``stamp``."""
        raise NotImplementedError

    def config(self, workload: str) -> str:
        """One line saying how the workers run, for the table."""
        raise NotImplementedError

    def stamp_pusher(self) -> Callable[[int], object]:
        """A sync callable that pushes ``bench.stamp(index)``."""
        raise NotImplementedError

    def check(self, n: int) -> None:
        """After a processing run: raise BenchError if the run did not do exactly n tasks."""

    def close(self) -> None:
        """Release the producer's connections."""


class Relier(System):
    name = "relier"

    def __init__(self, client: redis.Redis, url: str, concurrency: int) -> None:
        super().__init__(client, url)
        self.concurrency = concurrency
        self.app: Any = importlib.import_module("benchmarks.relier_app")
        self.app.app.configure(redis_url=url)
        self._pending = client.register_script(RELIER_PENDING)

    def task(self, name: str) -> Any:
        return getattr(self.app, name)

    def fill(self, task: str, n: int) -> None:
        for start in range(0, n, BULK_BATCH):
            self.task(task).push_many([((), {})] * min(BULK_BATCH, n - start))

    def pending(self, n: int) -> tuple[int, int]:
        queued, inflight = self._pending(keys=[QUEUE], args=[f"relier:{{{QUEUE}}}:processing:*"])
        return int(queued), int(inflight)

    def argv(self, workload: str) -> list[str]:
        return python_argv("relier", "worker", "-A", "benchmarks.relier_app:app",
                           "--redis-url", self.url, "-Q", QUEUE, "--processes", str(PROCESSES),
                           "--concurrency", str(self.concurrency), "--log-level", "warning")

    def config(self, workload: str) -> str:
        return f"--processes {PROCESSES} --concurrency {self.concurrency} (uvloop)"

    def stamp_pusher(self) -> Callable[[int], object]:
        push: Callable[[int], object] = self.app.stamp.push
        return push

    def check(self, n: int) -> None:
        # Every message taken (batch fetch, BLMOVE, deferred pull) is counted here.
        deliveries = self.client.hget(f"relier:{{{QUEUE}}}:stats", "fetched")
        dead = int(self.client.llen(f"relier:{{{QUEUE}}}:dlq"))
        if dead or (deliveries is not None and int(deliveries) != n):
            raise BenchError(f"Relier made {deliveries} deliveries for {n} tasks, {dead} DLQ'd")

    def close(self) -> None:
        self.app.app.close()


class Celery(System):
    """Vanilla Celery: PROCESSES separate ``celery worker`` instances, each its own consumer."""

    name = "celery"

    def __init__(self, client: redis.Redis, url: str, pools: dict[str, CeleryPool]) -> None:
        super().__init__(client, url)
        self.pools = pools
        self.app: Any = importlib.import_module("benchmarks.celery_app")
        self._pending = client.register_script(LEN_AND_HLEN)

    def fill(self, task: str, n: int) -> None:
        # Celery's fastest bulk send: one producer (one connection) for every apply_async.
        with self.app.app.producer_or_acquire() as producer:
            for _ in range(n):
                getattr(self.app, task).apply_async(producer=producer)

    def pending(self, n: int) -> tuple[int, int]:
        queued, inflight = self._pending(keys=[QUEUE, "unacked"])
        return int(queued), int(inflight)

    def argv(self, workload: str) -> list[str]:
        pool = self.pools[workload]
        return together([python_argv(
            "celery", "-A", "benchmarks.celery_app", "worker", "-Q", QUEUE, "-n", f"w{k}@%h",
            "-P", pool.pool, "-c", str(pool.concurrency), "-l", "warning",
            "--without-mingle", "--without-gossip", "--without-heartbeat",
        ) for k in range(PROCESSES)])

    def config(self, workload: str) -> str:
        pool = self.pools[workload]
        return (f"{PROCESSES} workers x -P {pool.pool} -c {pool.concurrency}, "
                "prefetch x4, acks late")

    def stamp_pusher(self) -> Callable[[int], object]:
        push: Callable[[int], object] = self.app.stamp.delay
        return push

    def close(self) -> None:
        self.app.app.close()


class Taskiq(System):
    """taskiq with taskiq-redis's ListQueueBroker (LPUSH/BRPOP, no acks)."""

    name = "taskiq"

    def __init__(self, client: redis.Redis, url: str) -> None:
        super().__init__(client, url)
        self.app: Any = importlib.import_module("benchmarks.taskiq_app")
        self.loop = asyncio.new_event_loop()
        self.loop.run_until_complete(self.app.broker.startup())
        self._pending = client.register_script(LEN_AND_GET)

    def run(self, work: Coroutine[Any, Any, Any]) -> Any:
        return self.loop.run_until_complete(work)

    def fill(self, task: str, n: int) -> None:
        kiq = getattr(self.app, task).kiq

        async def fill() -> None:
            for start in range(0, n, TASKIQ_FILL_WIDTH):
                await asyncio.gather(*(kiq() for _ in range(min(TASKIQ_FILL_WIDTH, n - start))))

        self.run(fill())

    def pending(self, n: int) -> tuple[int, int]:
        queued, done = self._pending(keys=[QUEUE, DONE_KEY])
        return int(queued), n - int(queued) - int(done)

    def argv(self, workload: str) -> list[str]:
        return [sys.executable, "-m", "taskiq", "worker", "benchmarks.taskiq_app:broker",
                "--workers", str(PROCESSES), "--max-async-tasks", "100",
                "--log-level", "WARNING", "--no-configure-logging"]

    def config(self, workload: str) -> str:
        return f"ListQueueBroker, --workers {PROCESSES} --max-async-tasks 100"

    def stamp_pusher(self) -> Callable[[int], object]:
        return lambda index: self.run(self.app.stamp.kiq(index))

    def close(self) -> None:
        self.run(self.app.broker.shutdown())
        self.loop.close()


class Dramatiq(System):
    """dramatiq with its Redis broker, default middleware minus nothing, no results."""

    name = "dramatiq"
    #: Worker threads per process: the default 8, and 100 for I/O like everyone else.
    THREADS: ClassVar[dict[str, int]] = {"noop": 8, "io": 100, "stamp": 8}

    def __init__(self, client: redis.Redis, url: str) -> None:
        super().__init__(client, url)
        self.app: Any = importlib.import_module("benchmarks.dramatiq_app")
        self._pending = client.register_script(LEN_AND_HLEN)

    def fill(self, task: str, n: int) -> None:
        send = getattr(self.app, task).send
        for _ in range(n):
            send()

    def pending(self, n: int) -> tuple[int, int]:
        queued, held = self._pending(keys=[f"dramatiq:{QUEUE}", f"dramatiq:{QUEUE}.msgs"])
        return int(queued), int(held) - int(queued)

    def argv(self, workload: str) -> list[str]:
        return python_argv("dramatiq", "benchmarks.dramatiq_app", "--processes", str(PROCESSES),
                           "--threads", str(self.THREADS[workload]), "--queues", QUEUE)

    def config(self, workload: str) -> str:
        return f"RedisBroker, --processes {PROCESSES} --threads {self.THREADS[workload]}"

    def stamp_pusher(self) -> Callable[[int], object]:
        push: Callable[[int], object] = self.app.stamp.send
        return push

    def close(self) -> None:
        self.app.broker.close()
