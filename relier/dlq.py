"""The dead-letter queue: list, show, replay and purge what will not run again.

Each queue ``q`` keeps its entries (newest first) in ``relier:{q}:dlq``; queues are found
through the ``relier:queues`` set that producers and workers add to. Replay takes an
entry out and enqueues its original message in the same script, so an entry is never
both replayed and kept, nor replayed twice. A replayed message starts afresh (retries 0,
no resurrections or deferrals) and counts its replays in ``relier_replays``.

Entries are read as hostile bytes: one that does not decode (written by hand, or by an
old version) is listed with reason ``unreadable`` and its raw bytes, can be purged, and
is never replayed; it never hides the entries around it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from relier.errors import PayloadError
from relier.protocol import dead_letter
from relier.protocol import message as wire
from relier.protocol.dead_letter import DeadLetter
from relier.protocol.headers import DEFERRALS_HEADER, RATE_TOKEN_HEADER
from relier.store import admin, views
from relier.store.clients import SyncClient
from relier.store.runner import perform_sync

#: Relier's own counters are reset on replay, so a replayed task starts with a clean slate.
_COUNTER_HEADERS = (wire.RESURRECTIONS_HEADER, wire.LONE_DEATHS_HEADER,
                    wire.FIRST_DEFERRED_HEADER, DEFERRALS_HEADER, RATE_TOKEN_HEADER)


@dataclass(slots=True)
class Replayed:
    """What a replay did: the task ids enqueued again, and the entries it left alone."""

    task_ids: list[str] = field(default_factory=list)
    #: One line per entry not replayed, saying which and why.
    skipped: list[str] = field(default_factory=list)


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

    def __init__(self, client: SyncClient) -> None:
        self._client = client
        # redis-py's Script reloads itself after NOSCRIPT.

    def queues(self) -> list[str]:
        return views.relier_queues_sync(self._client)

    def _raw_entries(self, only: Filter) -> Iterator[tuple[bytes, DeadLetter]]:
        names = [only.queue] if only.queue else self.queues()
        for queue in names:
            for raw in views.dead_letter_entries_sync(self._client, queue):
                entry = _read(raw, queue)
                if only.matches(entry):
                    yield raw, entry

    def entries(self, only: Filter = Filter(), limit: int | None = None) -> list[DeadLetter]:
        """Matching entries, newest first."""
        found = [entry for _, entry in self._raw_entries(only)]
        found.sort(key=lambda e: e.failed_at, reverse=True)
        return found[:limit] if limit else found

    def counts(self) -> dict[str, int]:
        """Entries per queue (only queues that have any)."""
        names = self.queues()
        sizes = views.dead_letter_sizes_sync(self._client, names)
        return {q: n for q, n in zip(names, sizes, strict=True) if n}

    def replay(self, only: Filter) -> Replayed:
        """Enqueue the original message of each matching entry again, with fresh counters
        (see :func:`fresh_message`); unreadable entries are skipped and said so."""
        done = Replayed()
        for raw, entry in list(self._raw_entries(only)):
            if entry.reason == dead_letter.UNREADABLE:
                done.skipped.append(f"{entry.task_id or 'an entry'} in the DLQ of "
                                    f"{entry.queue!r}: {entry.error}")
                continue
            try:
                message = fresh_message(entry)
            except PayloadError as exc:
                done.skipped.append(f"{entry.task_id or 'an entry'}: {exc.detail}")
                continue
            if perform_sync(self._client, admin.replay(
                    dlq_queue=entry.queue, target_queue=entry.queue,
                    priority=self._priority(entry), entry=raw, message=message,
                    reason=entry.reason)):
                done.task_ids.append(entry.task_id or "?")
        return done

    def purge(self, only: Filter) -> int:
        """Delete matching entries; returns how many."""
        removed = 0
        for raw, entry in list(self._raw_entries(only)):
            # An unreadable entry was counted under the reason its text names, if any.
            reason = dead_letter.counted_reason(raw) \
                if entry.reason == dead_letter.UNREADABLE else entry.reason
            removed += perform_sync(self._client, admin.remove_dead_letter(
                dlq_queue=entry.queue, entry=raw, reason=reason))
        return removed

    @staticmethod
    def _priority(entry: DeadLetter) -> int | None:
        """The original message's priority (it goes back to that priority's list)."""
        if isinstance(entry.message, dict) and isinstance(entry.message.get("properties"), dict):
            value = entry.message["properties"].get("priority")
            return value if isinstance(value, int) else None
        return None



def _read(raw: bytes, queue: str) -> DeadLetter:
    try:
        return dead_letter.decode(raw)
    except PayloadError as exc:
        return dead_letter.unreadable(raw, queue, exc.detail)


def fresh_message(entry: DeadLetter) -> bytes:
    """The original message with fresh counters: retries 0 (so attempt 1 and every retry
    again), no resurrections, deferrals or rate-limit token, and ``relier_replays`` one
    more than it was. A message that was not JSON is given back byte for byte."""
    if isinstance(entry.message, dict) and isinstance(entry.message.get("headers"), dict):
        headers: dict[str, Any] = {k: v for k, v in entry.message["headers"].items()
                                   if k not in _COUNTER_HEADERS}
        if "task" in headers:  # protocol v2: the retry count is a header
            headers["retries"] = 0
        replays = headers.get(wire.REPLAYS_HEADER)
        headers[wire.REPLAYS_HEADER] = (replays if type(replays) is int else 0) + 1
        return wire.encode_json({**entry.message, "headers": headers})
    try:
        return dead_letter.replay_bytes(entry)
    except ValueError as exc:  # binascii.Error: a hand-edited message_raw
        raise PayloadError("payload_invalid", f"its message_raw is not base64: {exc}") from exc
