"""`relier purge QUEUE`: drop the messages waiting in a queue, in one script."""

from __future__ import annotations

from relier.store import admin, views
from relier.store.clients import SyncClient
from relier.store.runner import perform_sync


def waiting(client: SyncClient, queue: str, *, delayed: bool = False) -> int:
    """How many messages a purge of ``queue`` would delete now."""
    return views.waiting_sync(client, queue, delayed=delayed)


def purge_queue(client: SyncClient, queue: str, *, delayed: bool = False) -> int:
    """Delete the messages waiting in ``queue`` (every priority list, and its delayed set
    if ``delayed``); returns how many went. Running tasks are not touched."""
    return perform_sync(client, admin.purge_queue(queue=queue, delayed=delayed))
