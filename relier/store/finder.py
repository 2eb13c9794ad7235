"""Looking for one task's message or DLQ entry where it can be (``relier inspect task``).

A :class:`Place` names a list or sorted set by what it is (a worker's processing list,
a priority list of a queue, the delayed set, the DLQ), never by key: callers ask for
places and search them with :func:`hits`, which runs ``find.lua`` slice by slice so no
single call holds the server for long.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Final, Literal

from relier.store import admin, keys
from relier.store.clients import SyncClient
from relier.store.runner import perform_sync

#: Elements looked at per script call while a long list is scanned.
FIND_SLICE: Final = 5000


@dataclass(frozen=True, slots=True)
class Place:
    """Somewhere a task's message (or DLQ entry) can be."""

    kind: Literal["processing", "queue", "delayed", "dlq"]
    queue: str
    _key: str

    @property
    def sorted_set(self) -> bool:
        """A sorted set (scored by due time in ms), not a list."""
        return self.kind == "delayed"


def processing(queue: str, worker_id: str) -> Place:
    """A worker's processing list for one queue."""
    return Place("processing", queue, keys.processing(queue, worker_id))


def queue_lists(queue: str) -> list[Place]:
    """A queue's priority lists, in the order kombu serves them."""
    return [Place("queue", queue, name) for name in keys.queue_lists(queue)]


def delayed(queue: str) -> Place:
    """A queue's delayed set (countdown, eta, retry)."""
    return Place("delayed", queue, keys.delayed(queue))


def dead_letters(queue: str) -> Place:
    """A queue's DLQ."""
    return Place("dlq", queue, keys.dead_letters(queue))


def length_sync(client: SyncClient, place: Place) -> int:
    """How many elements the place holds now."""
    return int(client.zcard(place._key) if place.sorted_set else client.llen(place._key))


@dataclass(frozen=True, slots=True)
class Hit:
    """An element whose text holds the task id: its index, its bytes, and (in the
    delayed set) its due time in seconds."""

    index: int
    element: bytes
    due_s: float


def hits(client: SyncClient, place: Place, task_id: str,
         slice_size: int = FIND_SLICE) -> Iterator[Hit]:
    """Each element of ``place`` whose text holds ``task_id``, searched slice by slice
    (the caller decodes each and checks it is the task's own)."""
    start = 0
    while True:
        hit = perform_sync(client, admin.find(
            key=place._key, task_id=task_id, start=start, count=slice_size))
        if hit is None:
            start += slice_size
            if start >= length_sync(client, place):
                return
            continue
        yield Hit(hit.index, hit.element, (hit.score or 0.0) / 1000)
        start = hit.index + 1
