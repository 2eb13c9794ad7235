"""Running a batch of operations the way the server allows: one pipeline on one Redis
(plain acks of one processing list coalesced into one call), and on a cluster each
operation in its cluster form (a settle's fence and outbox)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import redis.asyncio as aioredis

from relier.store import coalesce, outbox, runner
from relier.store.cluster import is_cluster
from relier.store.runner import Op


async def run_all(client: aioredis.Redis, ops: Sequence[Op[Any]]) -> list[Any]:
    """Each operation's raw reply (or the error it raised), in order; read them with
    ``op.read``. One round trip on one server; concurrent calls on a cluster."""
    if not is_cluster(client):
        plan = coalesce.plan(ops)
        return coalesce.split(plan, await runner.run_many(client, plan.calls))
    return list(await asyncio.gather(*(_run_on_cluster(client, op) for op in ops),
                                     return_exceptions=True))


async def _run_on_cluster(client: aioredis.Redis, op: Op[Any]) -> Any:
    fenced = op.cluster_form()
    if fenced is not None:
        return await outbox.settle(client, fenced)
    return await runner.run(client, op.call)
