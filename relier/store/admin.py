"""Typed calls of the scripts behind the admin commands: DLQ replay and purge, the DLQ
count rebuild, a queue purge and the task finder of ``relier inspect task``.

Each is an :class:`~relier.store.runner.Op` built from keyword arguments; the CLI runs
them on its blocking client with :func:`~relier.store.runner.perform_sync`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from relier.store import keys
from relier.store.clients import SyncClient
from relier.store.runner import Op, ScriptCall


def _as_bytes(value: object) -> bytes:
    return value if isinstance(value, bytes) else str(value).encode()


def replay(*, dlq_queue: str, target_queue: str, priority: int | None, entry: bytes,
           message: bytes, reason: str) -> Op[bool]:
    """Move one DLQ entry's message back to ``target_queue`` (the list of its
    ``priority``); False if the entry was gone."""
    target_list = keys.queue_list(target_queue, priority)
    return Op(ScriptCall("replay", [keys.dead_letters(dlq_queue), target_list,
                                    keys.dlq_reasons(dlq_queue)], [entry, message, reason]),
              lambda reply: bool(int(reply)))


def remove_dead_letter(*, dlq_queue: str, entry: bytes, reason: str) -> Op[bool]:
    """Delete one DLQ entry and uncount it under ``reason``; False if it was gone."""
    return Op(ScriptCall("dlq_remove", [keys.dead_letters(dlq_queue),
                                        keys.dlq_reasons(dlq_queue)], [entry, reason]),
              lambda reply: bool(int(reply)))


def recount_dead_letters(*, dlq_queue: str) -> Op[int]:
    """Rebuild a DLQ's count-by-reason hash from its entries; returns how many it counted."""
    return Op(ScriptCall("dlq_recount", [keys.dead_letters(dlq_queue),
                                         keys.dlq_reasons(dlq_queue)], []), int)


def purge_queue(*, queue: str, delayed: bool) -> Op[int]:
    """Delete every waiting message of ``queue`` (and its delayed set if ``delayed``)."""
    targets = [*keys.queue_lists(queue), *([keys.delayed(queue)] if delayed else [])]
    return Op(ScriptCall("purge", targets, []), int)


@dataclass(frozen=True, slots=True)
class Found:
    """An element that holds a task id's text: where, what, and its score (sorted set)."""

    index: int
    element: bytes
    score: float | None


def find(*, key: str, task_id: str, start: int, count: int) -> Op[Found | None]:
    """Look for ``task_id`` among ``count`` elements of ``key`` from ``start``."""
    return Op(ScriptCall("find", [key], [task_id, start, count]), _read_found)


def _read_found(reply: Any) -> Found | None:
    if not reply:
        return None
    index, element, score = reply
    text = _as_bytes(score)
    return Found(int(index), _as_bytes(element), float(text) if text else None)


def flush_database_sync(client: SyncClient) -> None:
    """Delete every key of the client's database (the test plugin's fresh database per
    test; never called on a deployment's Redis)."""
    client.flushdb()
