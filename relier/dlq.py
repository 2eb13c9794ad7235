"""The dead-letter queue: list, show, replay and purge what will not run again.

Each queue ``q`` keeps its entries (newest first) in ``relier:{q}:dlq``; queues are found
through the ``relier:queues`` set that producers and workers add to. Replay takes an
entry out and enqueues its original message in the same script, so an entry is never
both replayed and kept, nor replayed twice.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import redis

from relier.broker import as_bytes
from relier.protocol import dead_letter, keys, scripts
from relier.protocol import message as wire
from relier.protocol.dead_letter import DeadLetter
from relier.runtime.rate_limit import RATE_TOKEN_HEADER

#: Relier's own counters are reset on replay, so a replayed task starts with a clean slate.
_COUNTER_HEADERS = (wire.RESURRECTIONS_HEADER, wire.LONE_DEATHS_HEADER,
                    wire.FIRST_DEFERRED_HEADER, "relier_deferrals", RATE_TOKEN_HEADER)


@dataclass(frozen=True, slots=True)
class Filter:
    """Which entries a command applies to; ``None`` matches anything."""

    queue: str | None = None
    task: str | None = None
    reason: str | None = None
    task_id: str | None = None

    def matches(self, entry: DeadLetter) -> bool:
        return (
            (self.queue is None or entry.queue == self.queue)
            and (self.task is None or entry.task == self.task)
            and (self.reason is None or entry.reason == self.reason)
            and (self.task_id is None or entry.task_id == self.task_id)
        )


class DeadLetterQueue:
    """The DLQs of every known queue, through a blocking client."""

    def __init__(self, client: redis.Redis) -> None:
        self._client = client
        # redis-py's Script reloads itself after NOSCRIPT.
        self._replay = client.register_script(scripts.source("replay"))
        self._remove = client.register_script(scripts.source("dlq_remove"))

    def queues(self) -> list[str]:
        return sorted(as_bytes(q).decode() for q in self._client.smembers(keys.KNOWN_QUEUES))

    def _raw_entries(self, only: Filter) -> Iterator[tuple[bytes, DeadLetter]]:
        names = [only.queue] if only.queue else self.queues()
        for queue in names:
            for raw in self._client.lrange(keys.dead_letters(queue), 0, -1):
                entry = dead_letter.decode(as_bytes(raw))
                if only.matches(entry):
                    yield as_bytes(raw), entry

    def entries(self, only: Filter = Filter(), limit: int | None = None) -> list[DeadLetter]:
        """Matching entries, newest first."""
        found = [entry for _, entry in self._raw_entries(only)]
        found.sort(key=lambda e: e.failed_at, reverse=True)
        return found[:limit] if limit else found

    def counts(self) -> dict[str, int]:
        """Entries per queue (only queues that have any)."""
        with self._client.pipeline(transaction=False) as pipe:
            names = self.queues()
            for queue in names:
                pipe.llen(keys.dead_letters(queue))
            sizes = pipe.execute()
        return {q: n for q, n in zip(names, sizes, strict=True) if n}

    def replay(self, only: Filter) -> list[str]:
        """Enqueue the original message of each matching entry again; returns task ids."""
        replayed: list[str] = []
        for raw, entry in list(self._raw_entries(only)):
            message = self._fresh_message(entry)
            target = self._target_list(entry)
            if self._replay(keys=[keys.dead_letters(entry.queue), target,
                                  keys.dlq_reasons(entry.queue)],
                            args=[raw, message, entry.reason]):
                replayed.append(entry.task_id or "?")
        return replayed

    def purge(self, only: Filter) -> int:
        """Delete matching entries; returns how many."""
        removed = 0
        for raw, entry in list(self._raw_entries(only)):
            removed += int(self._remove(keys=[keys.dead_letters(entry.queue),
                                              keys.dlq_reasons(entry.queue)],
                                        args=[raw, entry.reason]))
        return removed

    @staticmethod
    def _target_list(entry: DeadLetter) -> str:
        priority = None
        if isinstance(entry.message, dict) and isinstance(entry.message.get("properties"), dict):
            value = entry.message["properties"].get("priority")
            priority = value if isinstance(value, int) else None
        return keys.queue_list(entry.queue, priority)

    @staticmethod
    def _fresh_message(entry: DeadLetter) -> bytes:
        """The original message, with Relier's death and deferral counters removed."""
        if isinstance(entry.message, dict) and isinstance(entry.message.get("headers"), dict):
            headers = {k: v for k, v in entry.message["headers"].items()
                       if k not in _COUNTER_HEADERS}
            return wire.encode_json({**entry.message, "headers": headers})
        return dead_letter.replay_bytes(entry)
