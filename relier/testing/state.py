"""What the test worker reads from Redis, in one place: how much work is still pending,
the dead letters and the stored results. Reads only; nothing here changes a key.

The pending count is read in one MULTI, so a message moving between lists (queue →
processing list → delayed set) is seen exactly once: every such move is one script.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import redis
import redis.asyncio as aioredis

from relier.dlq import DeadLetterQueue, Filter
from relier.protocol import keys, results
from relier.protocol.dead_letter import DeadLetter
from relier.protocol.results import ResultMeta


@dataclass(frozen=True, slots=True)
class Pending:
    """Work a worker still has to do on its queues."""

    queued: int
    in_flight: int
    delayed_due: int

    @property
    def total(self) -> int:
        return self.queued + self.in_flight + self.delayed_due

    def describe(self) -> str:
        return (f"{self.queued} queued, {self.in_flight} in flight, "
                f"{self.delayed_due} delayed and due")


def _queue_pending(pipe: Any, queues: Sequence[str], worker_id: str, due_ms: int) -> None:
    """Queue the reads of :func:`pending` on a pipeline (sync or async: same commands)."""
    for queue in queues:
        for name in keys.queue_lists(queue):
            pipe.llen(name)
        pipe.llen(keys.processing(queue, worker_id))
        pipe.zcount(keys.delayed(queue), "-inf", due_ms)


def _count(replies: Sequence[Any]) -> Pending:
    """Fold the replies of :func:`_queue_pending`: per queue, four lists, one processing
    list, one delayed count."""
    per_queue = len(keys.queue_lists("q")) + 2
    queued = in_flight = delayed = 0
    for start in range(0, len(replies), per_queue):
        group = [int(r) for r in replies[start:start + per_queue]]
        queued += sum(group[:-2])
        in_flight += group[-2]
        delayed += group[-1]
    return Pending(queued=queued, in_flight=in_flight, delayed_due=delayed)


def pending(client: redis.Redis, *, queues: Sequence[str], worker_id: str,
            due_before_ms: int) -> Pending:
    """Messages queued, held by ``worker_id``, or delayed and due before ``due_before_ms``."""
    with client.pipeline(transaction=True) as pipe:
        _queue_pending(pipe, queues, worker_id, due_before_ms)
        return _count(pipe.execute())


async def apending(client: aioredis.Redis, *, queues: Sequence[str], worker_id: str,
                   due_before_ms: int) -> Pending:
    """:func:`pending`, from async code."""
    async with client.pipeline(transaction=True) as pipe:
        _queue_pending(pipe, queues, worker_id, due_before_ms)
        return _count(await pipe.execute())


def dead_letters(client: redis.Redis, *, task: str | None = None,
                 reason: str | None = None) -> list[DeadLetter]:
    """DLQ entries of every known queue, newest first, optionally of one task or reason."""
    return DeadLetterQueue(client).entries(Filter(task=task, reason=reason))


def stored_result(client: redis.Redis, *, task_id: str) -> ResultMeta | None:
    """The result stored for ``task_id`` as Celery's backend keeps it, or None."""
    raw = client.get(keys.result(task_id))
    return results.decode(raw) if raw else None
