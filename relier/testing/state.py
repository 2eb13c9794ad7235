"""What the test worker reads from Redis, in one place: how much work is still pending,
the dead letters and the stored results. Reads only; nothing here changes a key.

The pending count is read in one MULTI, so a message moving between lists (queue →
processing list → delayed set) is seen exactly once: every such move is one script.
"""

from __future__ import annotations

from collections.abc import Sequence

from relier.dlq import DeadLetterQueue, Filter
from relier.protocol import results
from relier.protocol.dead_letter import DeadLetter
from relier.protocol.results import ResultMeta
from relier.store import results as result_store
from relier.store import views
from relier.store.clients import AsyncClient, SyncClient
from relier.store.views import Pending

__all__ = ["Pending", "apending", "dead_letters", "pending", "stored_result"]


def pending(client: SyncClient, *, queues: Sequence[str], worker_id: str,
            due_before_ms: int) -> Pending:
    """Messages queued, held by ``worker_id``, or delayed and due before ``due_before_ms``."""
    return views.pending_sync(client, queues=queues, worker_id=worker_id,
                              due_before_ms=due_before_ms)


async def apending(client: AsyncClient, *, queues: Sequence[str], worker_id: str,
                   due_before_ms: int) -> Pending:
    """:func:`pending`, from async code."""
    return await views.pending(client, queues=queues, worker_id=worker_id,
                               due_before_ms=due_before_ms)


def dead_letters(client: SyncClient, *, task: str | None = None,
                 reason: str | None = None) -> list[DeadLetter]:
    """DLQ entries of every known queue, newest first, optionally of one task or reason."""
    return DeadLetterQueue(client).entries(Filter(task=task, reason=reason))


def stored_result(client: SyncClient, *, task_id: str) -> ResultMeta | None:
    """The result stored for ``task_id`` as Celery's backend keeps it, or None."""
    raw = result_store.stored_sync(client, task_id)
    return results.decode(raw) if raw else None
