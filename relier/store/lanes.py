"""Redis access for the two side lanes of a worker's intake, in one place.

* The **suspect lane** (``SUSPECT_QUEUE``): messages recovered from dead workers,
  run one at a time by the one worker holding ``keys.SUSPECT_LEASE``.
* The **deferred sets** (``keys.deferred(q)``): messages no worker that saw them could
  run yet (a rolling deploy), taken out only by a worker that can run them.

Typed calls with keyword arguments.
"""

from __future__ import annotations

import time

from relier.store import keys
from relier.store.broker import Broker, as_bytes
from relier.store.clients import SyncClient


async def suspects_waiting(broker: Broker) -> int:
    """How many recovered messages wait in the suspect lane."""
    return int(await broker.client.llen(keys.queue_list(keys.SUSPECT_QUEUE)))


async def hold_suspect_lease(broker: Broker, *, holder: str, lease_ms: int) -> bool:
    """Take or keep the lease of the suspect lane's one runner."""
    return bool(await broker.call("lease", [keys.SUSPECT_LEASE], [holder, lease_ms]))


async def release_suspect_lease(broker: Broker, *, holder: str) -> None:
    """Give the lease up at once (only if still ours), so another worker need not wait."""
    await broker.call("lock_release", [keys.SUSPECT_LEASE], [holder])


async def deferred_page(broker: Broker, *, queue: str, start: int, count: int) -> list[bytes]:
    """Up to ``count`` deferred messages of ``queue``, from rank ``start`` (soonest window
    end first)."""
    found = await broker.client.zrange(keys.deferred(queue), start, start + count - 1)
    return [as_bytes(raw) for raw in found]


async def take_deferred(broker: Broker, *, queue: str, worker_id: str, raw: bytes) -> bool:
    """Move one deferred message into this worker's processing list; False when another
    worker took it first (or the pump moved it back to the queue)."""
    return bool(int(await broker.call(
        "undefer", [keys.deferred(queue), keys.processing(queue, worker_id), keys.stats(queue)],
        [raw])))


async def pump_deferred(broker: Broker, *, queue: str, batch: int) -> int:
    """Move deferred messages whose ``defer_window`` has ended back to the queue, where the
    next worker runs or dead-letters them; returns how many moved."""
    now_ms = int(time.time() * 1000)
    return int(await broker.call(
        "pump", [keys.deferred(queue), *keys.queue_lists(queue, cluster=broker.cluster)],
        [now_ms, batch]))


def deferred_sync(client: SyncClient, *, queue: str) -> list[bytes]:
    """Every deferred message of ``queue``, soonest window end first (a blocking read,
    for views such as the demo's)."""
    return [as_bytes(raw) for raw in client.zrange(keys.deferred(queue), 0, -1)]
