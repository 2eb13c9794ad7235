"""Global rate limits per task: ``@rl_task(rate_limit="100/s")``, shared by every worker.

The bucket lives in Redis (``rate_limit.lua``), so the limit holds across all worker
processes and hosts, not per worker as in Celery. Just before a task runs, the worker
reserves a token. A token that is free now lets the task run; otherwise the reservation
is for a future moment, and the message is parked in its queue's delayed set until then
(the same fenced move an eta uses). So excess work is never dropped, never retried in a
loop and never held in memory, and a backlog leaves the delayed set one token at a time
instead of every worker retrying at the same instant.

A message remembers (in a header) the attempt its token was reserved for, so it takes
one token per attempt: when it comes back from the delayed set it runs without taking
another, and a retry takes a new one.

Accuracy: a reserved message starts when the pump moves it (every ``pump_interval``) and
a worker is free, never before its token is due; bursts are at most one pump interval's
worth of tokens.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from relier.protocol import message as wire
from relier.protocol.headers import RATE_TOKEN_HEADER as RATE_TOKEN_HEADER
from relier.protocol.rate import RateLimit as RateLimit
from relier.runtime.delivery import SettleFailed
from relier.store import settles

if TYPE_CHECKING:
    from relier.protocol.message import TaskMessage
    from relier.runtime.delivery import Delivery
    from relier.task import Task

log = logging.getLogger("relier.task")

SettleFn = Callable[[Awaitable[bool]], Awaitable[bool]]


async def defer_if_limited(
    delivery: Delivery, message: TaskMessage, task: Task[Any, Any], settle: SettleFn
) -> bool:
    """Reserve the task's next token; True when the message was parked until it is due.

    ``settle`` is the executor's shielded settle, so the move into the delayed set
    completes even if the worker is stopping. The caller must not run a parked message.
    """
    limit = task.rate
    if limit is None or message.headers.get(RATE_TOKEN_HEADER) == message.retries:
        return False
    reply = await delivery.settler.settle(
        settles.rate_limit(task=task.name, interval_us=limit.interval_us))
    if isinstance(reply, SettleFailed):
        # Running is better than losing or stalling the task over a broken bucket.
        log.error("rate limit of %s unavailable (%s); running %s unthrottled",
                  task.name, reply.error, message.id)
        return False
    wait_s = reply / 1_000_000
    if wait_s <= 0:
        return False
    message.headers[RATE_TOKEN_HEADER] = message.retries
    log.debug("task %s[%s] is over its rate limit; its token is due in %.3fs",
              message.task, message.id, wait_s)
    await settle(delivery.schedule(message, wire.encode(message), time.time() + wait_s,
                                   why="rate_limited"))
    return True
