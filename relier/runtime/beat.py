"""The beat: every worker declares its schedules, and one of them sends the ticks.

1. **Declaring.** Every ``schedule_lease / 3`` seconds a worker writes the schedules its
   code declares (``relier:schedules:declared:<worker>``, TTL one lease) and withdraws
   them when it stops. The leader sends only schedules that a live worker declares, so a
   schedule removed from the code stops once no running worker has it. When two
   releases declare one name differently, the newest-started worker's declaration wins.
2. **Leading.** Workers with ``schedule`` on (the default) wait for the scheduler lock
   (``app.lock`` with a fencing token, lease ``schedule_lease``); the holder leads. A
   waiter sleeps until the holder's lease is due to end, so a leader killed with -9 is
   replaced within one lease; one that stops cleanly releases it at once.
3. **A pass.** The leader reads the declarations and each schedule's state, works out
   the due ticks (:mod:`relier.protocol.cadence`) and what to do with late ones
   (:mod:`relier.protocol.catch_up`), records misses (``tick_skip.lua``) and sends each
   tick (``tick.lua``: the enqueue and the record that the tick is done, in one script
   that refuses a caller whose lock value is no longer the lock's). So a leader that
   dies mid-pass, a paused leader that wakes after losing its lease, and the new leader
   cannot both enqueue one tick. It then sleeps until the next tick, renewing its lease.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final

import anyio

from relier.errors import LockLost, RelierError
from relier.lock import Lock
from relier.protocol import cadence, catch_up
from relier.protocol import message as wire
from relier.protocol.declaration import Declaration, Registration, merge
from relier.runtime.hooks import ScheduleMetrics
from relier.store import schedules as store
from relier.store.broker import REDIS_ERRORS, Broker
from relier.store.errors import StoreConnectionError as RedisConnectionError
from relier.store.schedules import ScheduleState
from relier.task import PushOptions, Task

if TYPE_CHECKING:
    from relier.app import App
    from relier.store.broker import Outgoing

log = logging.getLogger("relier.beat")

#: Seconds to wait after a Redis error before the beat tries again.
RETRY_S: Final = 1.0
#: Wake this long after a tick is due, so that the pass finds it due.
WAKE_LATE_S: Final = 0.005


def _redis_trouble(message: str, exc: BaseException) -> None:
    """Log a failed Redis call of the beat. Losing the connection is an outage, which the
    worker's fetch loops report once for the whole worker: a debug line here. Anything
    else (a script error, OOM, READONLY) is the beat's own news: a warning."""
    level = logging.DEBUG if isinstance(exc, (OSError, RedisConnectionError)) else logging.WARNING
    log.log(level, message, exc)


class LeaseLost(Exception):
    """The scheduler lease is someone else's now: stop leading."""


def _declared_call(*args: Any, **kwargs: Any) -> Any:
    """Stands in for a declared task the leader may not have: the declaring worker
    checked the arguments already."""


class Beat:
    """One worker's part in scheduling: declare always, lead when allowed and chosen."""

    def __init__(
        self, app: App, broker: Broker, worker_id: str, *, started_at: float,
        metrics: ScheduleMetrics | None = None, clock: Callable[[], float] = time.time,
    ) -> None:
        self.app = app
        self.broker = broker
        self.worker_id = worker_id
        self.started_at = started_at
        self.lease_s = app.settings.schedule_lease
        #: Ticks older than this when seen were missed by an outage (see catch_up).
        self.late_after_ms = round(2 * self.lease_s * 1000)
        self._metrics = metrics
        self._clock = clock
        #: Whether this worker leads now (for tests and logs).
        self.leading = False
        self._scope: anyio.CancelScope | None = None

    async def run(self) -> None:
        """Declare (and, with ``schedule`` on, lead) until cancelled or :meth:`stop`."""
        async with anyio.create_task_group() as tg:
            self._scope = tg.cancel_scope
            if self.app.schedules:
                tg.start_soon(self._declare_forever, name="relier beat declare")
            if self.app.settings.schedule:
                tg.start_soon(self._lead_forever, name="relier beat lead")

    def stop(self) -> None:
        """Hand over now (release the lease, withdraw the declarations): the worker is
        stopping, and another should lead while this one drains."""
        if self._scope is not None:
            self._scope.cancel()

    # -- declaring ------------------------------------------------------------------------

    def registration(self) -> Registration:
        return Registration(worker=self.worker_id, started_at=self.started_at,
                            schedules=list(self.app.schedules.values()))

    async def _declare_forever(self) -> None:
        ttl_ms = round(self.lease_s * 1000)
        try:
            while True:
                try:
                    await store.declare(self.broker.client, self.registration(), ttl_ms)
                except REDIS_ERRORS as exc:
                    _redis_trouble("could not declare this worker's schedules: %s", exc)
                await anyio.sleep(self.lease_s / 3)
        finally:
            with anyio.move_on_after(2, shield=True):
                try:
                    await store.withdraw(self.broker.client, self.worker_id)
                except REDIS_ERRORS as exc:
                    log.warning("could not withdraw this worker's schedules (%s); they "
                                "expire within %.0fs", exc, self.lease_s)

    # -- leading --------------------------------------------------------------------------

    async def _lead_forever(self) -> None:
        while True:
            lock = self.app.lock(store.SCHEDULER_LOCK, ttl=self.lease_s, holder=self.worker_id)
            try:
                await lock.aacquire()
            except REDIS_ERRORS as exc:
                _redis_trouble("could not compete for the scheduler lease: %s", exc)
                await anyio.sleep(RETRY_S)
                continue
            token = lock.token
            try:
                await self.lead(lock)
            except (LeaseLost, LockLost):
                log.warning("lost the scheduler lease (token %s): no longer sending ticks",
                            token)
            except REDIS_ERRORS as exc:
                _redis_trouble("stepping down as schedule leader: %s", exc)
                await anyio.sleep(RETRY_S)
            except Exception:
                # The beat must never take the worker down: step down, then compete again.
                log.exception("the schedule leader failed; stepping down")
                await anyio.sleep(RETRY_S)
            finally:
                self.leading = False
                await _release(lock)

    async def lead(self, lock: Lock) -> None:
        """Send ticks while ``lock`` is held; raises :class:`LeaseLost` when it is not."""
        self.leading = True
        log.info("leading the schedules (fencing token %d)", lock.token)
        renew_below = self.lease_s * 2 / 3
        while True:
            try:
                wait_s = await self.run_pass(lock.value)
            except REDIS_ERRORS as exc:
                _redis_trouble("schedule pass failed: %s", exc)
                wait_s = RETRY_S
            if lock.remaining < renew_below:
                await self._renew(lock)
            pause = min(wait_s, lock.remaining - renew_below)
            # Renewal failed (the lease is below the renewal point): try again within RETRY_S.
            await anyio.sleep(pause if pause > 0 else min(wait_s, RETRY_S))

    @staticmethod
    async def _renew(lock: Lock) -> None:
        """Extend the lease; raises ``LockLost`` when it is gone. Redis unreachable: keep
        going; every write is fenced, so a lease that lapses meanwhile only costs refusals."""
        try:
            await lock.aextend()
        except REDIS_ERRORS as exc:
            _redis_trouble("could not renew the scheduler lease: %s", exc)

    async def run_pass(self, holder: str) -> float:
        """Send what is due now as ``holder``; returns seconds until the next tick."""
        chosen = merge(await store.registrations(self.broker.client))
        if not chosen:
            return self.lease_s / 3
        found = await store.states(self.broker.client,
                                   {n: d.queue for n, d in chosen.items()})
        now_ms = self._now_ms()
        for name, declared in chosen.items():
            await self._advance(holder, declared, found[name], now_ms)
        upcoming = [t for d in chosen.values()
                    if (t := cadence.next_after(d.cadence, now_ms)) is not None]
        if not upcoming:
            return self.lease_s / 3
        return max(0.0, (min(upcoming) - self._now_ms()) / 1000) + WAKE_LATE_S

    def _now_ms(self) -> int:
        return int(self._clock() * 1000)

    async def _advance(
        self, holder: str, declared: Declaration, state: ScheduleState, now_ms: int
    ) -> None:
        name = declared.name
        if state.last_tick_ms is None:
            _check(await store.baseline(self.broker, holder=holder, name=name,
                                        queue=declared.queue, now_ms=now_ms))
            log.info("schedule %s (%s): first seen; next run at %s", name, declared.cadence,
                     _iso(cadence.next_after(declared.cadence, now_ms)))
            return
        due = cadence.due_ticks(declared.cadence, state.last_tick_ms, now_ms,
                                catch_up.CATCH_UP_CAP)
        if not due.count:
            return
        plan = catch_up.plan(due, now_ms=now_ms, policy=declared.missed,  # type: ignore[arg-type]
                             late_after_ms=self.late_after_ms)
        if plan.missed:
            await self._miss(holder, declared, plan.missed_through, plan.missed,
                             f"no scheduler ran (missed={declared.missed})", "outage")
        for tick in plan.send:
            await self._send(holder, declared, tick)

    async def _miss(
        self, holder: str, declared: Declaration, through_ms: int, count: int, reason: str,
        kind: str,
    ) -> None:
        name = declared.name
        written = await store.skip(self.broker, holder=holder, name=name, queue=declared.queue,
                                   through_ms=through_ms, count=count, reason=reason)
        _check(written)
        if written:
            log.warning("schedule %s: %d run(s) up to %s missed: %s", name, count,
                        _iso(through_ms), reason)
            if self._metrics is not None:
                self._metrics.schedule_missed(name, kind, count)

    async def _send(self, holder: str, declared: Declaration, tick_ms: int) -> None:
        try:
            batch = self._outgoing(declared, tick_ms)
        except RelierError as exc:
            await self._miss(holder, declared, tick_ms, 1, f"not sent: {exc}", "invalid")
            return
        outcome = await store.tick(self.broker, holder=holder, name=declared.name,
                                   tick_ms=tick_ms, now_ms=self._now_ms(), batch=batch)
        if outcome.status == "stale":
            log.warning("schedule %s: tick %s refused: another worker leads now",
                        declared.name, _iso(tick_ms))
            raise LeaseLost(declared.name)
        if outcome.status == "rejected":
            log.warning("schedule %s: tick %s missed: %s", declared.name, _iso(tick_ms),
                        outcome.reason)
            if self._metrics is not None:
                self._metrics.schedule_missed(declared.name, "admission", 1)
        elif outcome.status == "sent" and outcome.enqueued is not None:
            log.info("schedule %s: tick %s sent as %s[%s]", declared.name, _iso(tick_ms),
                     declared.task, outcome.enqueued.task_id)
            if self._metrics is not None:
                self._metrics.schedule_sent(declared.name)

    def _outgoing(self, declared: Declaration, tick_ms: int) -> Outgoing:
        """The tick's message, built by the producer like any push."""
        task: Task[..., Any] = Task(
            self.app, _declared_call, name=declared.task, queue=declared.queue,
            version=declared.version, soft_timeout=declared.soft_timeout,
            hard_timeout=declared.hard_timeout, ignore_result=declared.ignore_result,
            max_queue_depth=declared.max_queue_depth)
        options = PushOptions(
            countdown=random.uniform(0, declared.jitter) if declared.jitter > 0 else None,
            # Idempotency per tick: a tick is one call, whatever its arguments.
            idempotency_key=f"schedule:{declared.name}:{tick_ms}" if declared.idempotent
            else None,
            headers={wire.SCHEDULE_HEADER: declared.name, wire.TICK_HEADER: tick_ms})
        return self.app.producer.prepare(task, [(declared.args, declared.kwargs)], options)


def _iso(ms: int | None) -> str:
    """A tick for the logs: ISO 8601 in UTC, to the millisecond."""
    if ms is None:
        return "never"
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds")


def _check(written: bool | None) -> None:
    """A fenced write came back refused: this worker no longer leads."""
    if written is False:
        raise LeaseLost("the scheduler lease")


async def _release(lock: Lock) -> None:
    if lock.token is None:
        return
    with anyio.move_on_after(2, shield=True):
        try:
            await lock.arelease()
        except (LockLost, *REDIS_ERRORS):
            pass  # gone already: the next leader holds it, or it expires
