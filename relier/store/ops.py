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
    forms = [op.cluster_form() for op in ops]
    fenced = [(i, form) for i, form in enumerate(forms) if form is not None]
    plain = [i for i, form in enumerate(forms) if form is None]
    settled, ran = await asyncio.gather(
        outbox.settle_all(client, [f for _, f in fenced]),
        asyncio.gather(*(runner.run(client, ops[i].call) for i in plain),
                       return_exceptions=True))
    replies: list[Any] = [None] * len(ops)
    for (i, _), reply in zip(fenced, settled, strict=True):
        replies[i] = reply
    for i, reply in zip(plain, ran, strict=True):
        replies[i] = reply
    return replies
