"""What the read-only commands see of the queues: ``inspect``, ``queues``, ``top``, the
metrics' scrape, ``doctor``, ``dlq`` and the test worker's ``drain``.

Typed readings, each in one round trip where it can be (a pipeline; a MULTI where a
message moving between two lists must be seen once). Nothing here writes. Hash fields
and values read back are hostile: a field that is not a number is left out, never
guessed at (a reader that finds the DLQ's counts disagreeing with its length rebuilds
them with :func:`relier.store.admin.recount_dead_letters`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from relier.store import keys
from relier.store.broker import as_bytes
from relier.store.clients import AsyncClient, SyncClient
from relier.store.cluster import is_cluster

#: The exchange Celery producers declare their default queue's binding under.
_CELERY_EXCHANGE: Final = "celery"


def _text(value: object) -> str:
    return as_bytes(value).decode(errors="replace")


def _numbers(raw: Mapping[Any, Any], *, real: bool = False) -> dict[str, int]:
    """A hash of counts; a field whose value is not a number is skipped. ``real``: the
    value may be written as a float (the scripts' drain-rate fields)."""
    found = {}
    for k, v in raw.items():
        try:
            found[_text(k)] = int(float(_text(v))) if real else int(v)
        except (ValueError, OverflowError):
            continue
    return found


# -- queues -------------------------------------------------------------------------------

def relier_queues_sync(client: SyncClient) -> list[str]:
    """Every queue a Relier worker or producer has used, sorted."""
    return sorted(_text(q) for q in client.smembers(keys.KNOWN_QUEUES))


def known_queues_sync(client: SyncClient) -> list[str]:
    """Relier's queues, and those Celery producers declared on their default exchange
    (``celery``, where ``delay()`` goes by default), sorted."""
    with client.pipeline(transaction=False) as pipe:
        pipe.smembers(keys.KNOWN_QUEUES)
        pipe.smembers(keys.pidbox_bindings(_CELERY_EXCHANGE))
        relier_queues, bindings = pipe.execute()
    names = {_text(q) for q in relier_queues}
    for member in bindings:
        parts = as_bytes(member).split(keys.PRIORITY_SEPARATOR.encode())
        if len(parts) == 3 and parts[2]:
            names.add(parts[2].decode(errors="replace"))
    return sorted(names)


@dataclass(frozen=True, slots=True)
class QueueReading:
    """One queue's numbers as read in one round trip."""

    name: str
    #: Messages waiting, all priority lists together.
    depth: int
    #: The next message of each priority list (its right end; None: empty), as stored.
    heads: list[bytes | None]
    delayed: int
    #: Entries in the DLQ list, and its count-by-reason hash (fields that parse).
    dlq: int
    dlq_reasons: dict[str, int]
    #: Messages the given workers hold in their processing lists for this queue.
    in_flight: int


def queue_readings_sync(client: SyncClient,
                        holders: Mapping[str, Sequence[str]]) -> list[QueueReading]:
    """Each queue's reading (``holders``: queue -> ids of the workers consuming it), in
    one pipelined round trip for all of them."""
    names = list(holders)
    with client.pipeline(transaction=False) as pipe:
        for q in names:
            for name in keys.queue_lists(q):
                pipe.llen(name)
                pipe.lindex(name, -1)
            pipe.zcard(keys.delayed(q))
            pipe.llen(keys.dead_letters(q))
            pipe.hgetall(keys.dlq_reasons(q))
            for worker in holders[q]:
                pipe.llen(keys.processing(q, worker))
        replies = iter(pipe.execute())
    readings = []
    for q in names:
        depth, heads = 0, []
        for _ in keys.queue_lists(q):
            depth += int(next(replies))
            head = next(replies)
            heads.append(None if head is None else as_bytes(head))
        delayed, dlq = int(next(replies)), int(next(replies))
        reasons = _numbers(next(replies))
        in_flight = sum(int(next(replies)) for _ in holders[q])
        readings.append(QueueReading(name=q, depth=depth, heads=heads, delayed=delayed,
                                     dlq=dlq, dlq_reasons=reasons, in_flight=in_flight))
    return readings


@dataclass(frozen=True, slots=True)
class DeadLetterCount:
    """A DLQ's length and its count-by-reason hash, read in one MULTI."""

    size: int
    reasons: dict[str, int] = field(default_factory=dict)

    @property
    def consistent(self) -> bool:
        return sum(self.reasons.values()) == self.size


def dead_letter_count_sync(client: SyncClient, queue: str) -> DeadLetterCount:
    """The DLQ's length and counts by reason, at one moment."""
    with client.pipeline(transaction=True) as pipe:
        pipe.llen(keys.dead_letters(queue))
        pipe.hgetall(keys.dlq_reasons(queue))
        size, raw = pipe.execute()
    return DeadLetterCount(int(size), _numbers(raw))


def dead_letter_entries_sync(client: SyncClient, queue: str) -> list[bytes]:
    """Every entry of a queue's DLQ as stored, newest first (decoding is the caller's:
    :func:`relier.protocol.dead_letter.decode`, which reports an unreadable one)."""
    return [as_bytes(raw) for raw in client.lrange(keys.dead_letters(queue), 0, -1)]


def dead_letter_sizes_sync(client: SyncClient, queues: Sequence[str]) -> list[int]:
    """Each queue's DLQ length, in order, in one round trip."""
    if not queues:
        return []
    with client.pipeline(transaction=False) as pipe:
        for queue in queues:
            pipe.llen(keys.dead_letters(queue))
        return [int(n) for n in pipe.execute()]


def queue_counters_sync(client: SyncClient, queues: Sequence[str]) -> dict[str, dict[str, int]]:
    """The counters the scripts keep per queue (``fetched``, ``rejected``,
    ``idempotent_hits``, ...); a field that is not a number is left out."""
    if not queues:
        return {}
    with client.pipeline(transaction=False) as pipe:
        for q in queues:
            pipe.hgetall(keys.stats(q))
        replies = pipe.execute()
    return {q: _numbers(raw, real=True) for q, raw in zip(queues, replies, strict=True)}


def overdue_sync(client: SyncClient, queues: Sequence[str], before_ms: int) -> list[int]:
    """Per queue, how many delayed messages were due before ``before_ms``."""
    if not queues:
        return []
    with client.pipeline(transaction=False) as pipe:
        for q in queues:
            pipe.zcount(keys.delayed(q), "-inf", before_ms)
        return [int(n) for n in pipe.execute()]


def waiting_sync(client: SyncClient, queue: str, *, delayed: bool = False) -> int:
    """Messages waiting in ``queue``'s lists (and its delayed set if ``delayed``)."""
    with client.pipeline(transaction=False) as pipe:
        for name in keys.queue_lists(queue):
            pipe.llen(name)
        if delayed:
            pipe.zcard(keys.delayed(queue))
        return sum(int(n) for n in pipe.execute())


# -- a worker's pending work (the test worker's drain) -------------------------------------

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
    """Queue the reads of :func:`pending_sync` on a pipeline (sync or async: same
    commands)."""
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


def pending_sync(client: SyncClient, *, queues: Sequence[str], worker_id: str,
                 due_before_ms: int) -> Pending:
    """Messages queued, held by ``worker_id``, or delayed and due before
    ``due_before_ms``, read in one MULTI: every move between those lists is one script,
    so a moving message is counted exactly once. (On a cluster the queues' keys are in
    different slots, so each is read on its own: a count taken while a message moves can
    be off by it, and the next reading settles it.)"""
    with client.pipeline(transaction=not is_cluster(client)) as pipe:
        _queue_pending(pipe, queues, worker_id, due_before_ms)
        return _count(pipe.execute())


async def pending(client: AsyncClient, *, queues: Sequence[str], worker_id: str,
                  due_before_ms: int) -> Pending:
    """:func:`pending_sync` from async code."""
    async with client.pipeline(transaction=not is_cluster(client)) as pipe:
        _queue_pending(pipe, queues, worker_id, due_before_ms)
        return _count(await pipe.execute())
