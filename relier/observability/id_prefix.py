"""Task ids by their first characters, as the narrow terminal views show them.

``relier inspect task 3f2a`` and ``relier dlq show 3f2a`` take any unique start of an
id. The candidates are the ids Redis can list cheaply: tasks running now (the workers'
heartbeat tables), dead letters and stored results. A task still waiting in a queue is
found by its whole id only (finding a prefix there would read every message).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from relier.store import results as result_store
from relier.store.clients import SyncClient

if TYPE_CHECKING:
    from relier.observability.inspect import Inspector


def resolve_prefix(wanted: str, task_ids: Sequence[str]) -> str:
    """The one task id starting with ``wanted`` (an exact id always wins); raises
    ``LookupError`` naming the problem otherwise."""
    if wanted in task_ids:
        return wanted
    matches = sorted({t for t in task_ids if t.startswith(wanted)})
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise LookupError(f"no task id starting with {wanted!r} is running, dead-lettered "
                          "or has a stored result")
    shown = ", ".join(matches[:3]) + (", ..." if len(matches) > 3 else "")
    raise LookupError(f"{wanted!r} is the start of {len(matches)} task ids ({shown}); "
                      "give more of it")


def stored_result_ids(client: SyncClient, prefix: str) -> list[str]:
    """Ids of stored results (``celery-task-meta-<id>``) that start with ``prefix``."""
    return result_store.ids_starting_sync(client, prefix)


def candidates(inspector: Inspector, prefix: str) -> list[str]:
    """Ids starting with ``prefix`` among running tasks, dead letters and stored results."""
    from relier.dlq import DeadLetterQueue

    tables = inspector.running_tables(inspector.registry_entries())
    running = [t.task_id for table in tables.values() for t in table]
    dead = [e.task_id for e in DeadLetterQueue(inspector.client).entries() if e.task_id]
    found = running + dead + stored_result_ids(inspector.client, prefix)
    return sorted({t for t in found if t.startswith(prefix)})
