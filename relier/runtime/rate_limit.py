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
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from relier.broker import Broker
from relier.errors import ConfigurationError
from relier.protocol import message as wire

if TYPE_CHECKING:
    from relier.protocol.message import TaskMessage
    from relier.runtime.delivery import Delivery
    from relier.task import Task

log = logging.getLogger("relier.task")

#: Header holding the attempt (``retries``) a rate-limit token was reserved for.
RATE_TOKEN_HEADER: Final = "relier_rate_token"

_PERIODS_S: Final = {"s": 1.0, "m": 60.0, "h": 3600.0}
_PATTERN: Final = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*/\s*([smh])\s*$")


@dataclass(frozen=True, slots=True)
class RateLimit:
    """At most ``count`` task starts per ``period_s``, spaced evenly."""

    count: float
    period_s: float

    @classmethod
    def parse(cls, text: str) -> RateLimit:
        """``"100/s"``, ``"30/m"``, ``"500/h"`` (a decimal count such as ``"0.5/s"`` works)."""
        found = _PATTERN.match(text) if isinstance(text, str) else None
        if found is None or float(found.group(1)) <= 0:
            raise ConfigurationError(
                f"rate_limit={text!r}: expected a positive count per unit, "
                "like '100/s', '30/m' or '500/h'"
            )
        return cls(float(found.group(1)), _PERIODS_S[found.group(2)])

    @property
    def interval_us(self) -> float:
        """Microseconds between two tokens."""
        return self.period_s * 1_000_000 / self.count


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
    reply = await delivery.settler.settle(Broker.rate_limit_call(task.name, limit.interval_us, 1))
    wait_us = _wait_us(reply)
    if wait_us is None:
        # Running is better than losing or stalling the task over a broken bucket.
        log.error("rate limit of %s unavailable (the bucket script replied %r); "
                  "running %s unthrottled", task.name, reply, message.id)
        return False
    wait_s = wait_us / 1_000_000
    if wait_s <= 0:
        return False
    message.headers[RATE_TOKEN_HEADER] = message.retries
    log.debug("task %s[%s] is over its rate limit; its token is due in %.3fs",
              message.task, message.id, wait_s)
    await settle(delivery.schedule(message, wire.encode(message), time.time() + wait_s,
                                   why="rate_limited"))
    return True


def _wait_us(reply: object) -> int | None:
    """The bucket script's wait in µs, or None for anything else: the settler replies
    None for a script error (a bucket key of the wrong type, say), and a reply from
    Redis is never trusted to be the number it should be."""
    return reply if isinstance(reply, int) and not isinstance(reply, bool) else None
