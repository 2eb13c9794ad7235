"""Queue names that mean something to Relier itself (names only; keys live in the store)."""

from __future__ import annotations

from typing import Final

#: The internal queue that Phoenix moves a dead worker's tasks to.
REQUEUE_QUEUE: Final = "re-queue"
#: What a worker consumes without ``-Q``.
DEFAULT_QUEUES: Final = ("high_priority", "default", "low_priority", REQUEUE_QUEUE)
#: The suspect lane: tasks recovered from a dead worker, each re-run alone on one worker at
#: a time so that a death while running it is attributable to it (see phoenix.py).
SUSPECT_QUEUE: Final = "re-queue.suspect"
