"""Every message header Relier adds (names prefixed ``relier_``), in one place.

Celery reads headers with ``.get`` and ignores these, so they travel through Celery
producers, workers and kombu untouched. The Lua scripts never read them: what a script
needs from a message is passed in its arguments.
"""

from __future__ import annotations

from typing import Final

#: The payload version the producer's task had (absent: 1, as Celery sends).
VERSION_HEADER: Final = "relier_version"
#: An idempotent call's key, and how long its record lives (seconds).
IDEMPOTENCY_HEADER: Final = "relier_idempotency_key"
IDEMPOTENCY_TTL_HEADER: Final = "relier_idempotency_ttl"
#: How many times Phoenix moved the message off a dead worker, and the queue it was
#: taken from before it went to ``re-queue``.
RESURRECTIONS_HEADER: Final = "relier_resurrections"
ORIGIN_QUEUE_HEADER: Final = "relier_origin_queue"
#: Deaths of a worker that held this task and nothing else: the ones that prove it kills.
LONE_DEATHS_HEADER: Final = "relier_lone_deaths"
#: When the message was first deferred (unknown task or version), and how many times.
FIRST_DEFERRED_HEADER: Final = "relier_first_deferred_at"
DEFERRALS_HEADER: Final = "relier_deferrals"
#: The attempt whose rate-limit token the message already holds.
RATE_TOKEN_HEADER: Final = "relier_rate_token"
#: Unix time the producer sent the message (for the age of a queue's oldest message).
SENT_AT_HEADER: Final = "relier_sent_at"
#: On a periodic run: the schedule's name and the tick (ms since the epoch) it is for.
SCHEDULE_HEADER: Final = "relier_schedule"
TICK_HEADER: Final = "relier_tick"
#: How many times `relier dlq replay` has given this message another life.
REPLAYS_HEADER: Final = "relier_replays"
