"""Running one delivery, start to settle.

The executor decodes the message, decides whether it may run now (expired? revoked?
due later? a task this worker knows?), converts its arguments, runs it (``async def`` on
the loop, ``def`` in a worker thread) and settles the outcome through the delivery. It never
builds a Redis key. Settling is shielded from cancellation, so a task that finished
during shutdown still gets its result recorded.

A payload that cannot be decoded or whose arguments do not fit is dead-lettered at
once, never retried: running it again cannot fix it. A task that raises or passes its
hard timeout is retried through the delayed set when its options allow it
(``retry.py``), else dead-lettered; the timers themselves live in ``deadlines.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import traceback
from collections.abc import Callable, Sequence
from typing import Any, Final

import anyio
import msgspec

from relier.app import App
from relier.context import TaskContext
from relier.errors import PayloadError
from relier.protocol import canvas, dead_letter, results
from relier.protocol import message as wire
from relier.protocol.message import TaskMessage
from relier.runtime import retry, versioning
from relier.runtime.abandoned import AbandonedThreads
from relier.runtime.capacity import Capacity
from relier.runtime.deadlines import Caller, HardTimeout, limits_for
from relier.runtime.delivery import SETTLE_BOUND_S, Delivery
from relier.runtime.hooks import NO_TRACING, Observers, RunTracer, TaskObserver
from relier.runtime.progress import ProgressReporter, ResultFacts
from relier.runtime.rate_limit import defer_if_limited
from relier.runtime.revoked import RevokedIds, Terminations
from relier.task import Task

log = logging.getLogger("relier.task")

#: Seconds a settle may take (during shutdown too) before the worker gives up on it (the
#: message then stays in the processing list, where Phoenix finds it).
SETTLE_TIMEOUT_S: Final = SETTLE_BOUND_S
#: Seconds a delivery waits while another delivery of the same idempotent call runs.
BUSY_WAIT_S: Final = 5.0
#: An eta this close to now counts as due (clock skew between hosts).
ETA_TOLERANCE_S: Final = 0.05


class Executor:
    """Runs deliveries for one worker."""

    def __init__(
        self, app: App, worker_id: str, capacity: Capacity, thread_limit: int,
        on_threads_exceeded: Callable[[int], None] = lambda _running: None,
        recorder: TaskObserver | None = None,
        revoked: RevokedIds | None = None,
        terminations: Terminations | None = None,
        observers: Sequence[TaskObserver] = (),
        tracer: RunTracer = NO_TRACING,
    ) -> None:
        self._app = app
        #: Revoked ids (checked before a task runs) and running tasks (a revoke with
        #: terminate stops them); see revoked.py.
        self.revoked = revoked if revoked is not None else RevokedIds()
        self.terminations = terminations if terminations is not None else Terminations()
        #: Who watches each delivery (the recorder first); none can crash the worker.
        self._observers = Observers([*([recorder] if recorder else []), *observers])
        self._settings = app.settings
        self._worker_id = worker_id
        self._capacity = capacity
        #: Spans and span events of each run (the worker gives OpenTelemetry's).
        self._tracer = tracer
        #: (reason, task name) pairs whose deferral was explained once at warning level.
        self._deferral_noted: set[tuple[str, str]] = set()
        #: Calls task functions under their soft/hard timeouts (see deadlines.py).
        self.caller = Caller(
            anyio.CapacityLimiter(thread_limit),
            AbandonedThreads(app.settings.max_abandoned_threads, on_threads_exceeded),
            tracer,
        )

    async def execute(self, delivery: Delivery) -> None:
        """Run one delivery and settle it; always frees its slot."""
        # Decoded once, here, before any observer or step reads it. A failure is kept on
        # the delivery (PayloadError) or raised again inside the backstop below: either
        # way _execute dead-letters the message, and the slot is freed.
        with contextlib.suppress(Exception):
            delivery.decode(self._settings.max_message_bytes)
        self._observers.started(delivery)
        try:
            await self._execute(delivery)
        except Exception as exc:  # one message must never end the worker
            await self._quarantine(delivery, exc)
        finally:
            self._capacity.release()
            if delivery.on_done is not None:
                delivery.on_done()
            self._observers.finished(delivery)

    async def _execute(self, delivery: Delivery) -> None:
        try:
            message = delivery.decode(self._settings.max_message_bytes)
        except PayloadError as exc:
            log.error("dead-lettering an undecodable message from %r: %s", delivery.queue, exc)
            # Readable headers still name the task and id: the entry says which task it
            # was and its caller gets the failure instead of waiting for a result.
            await self._dead_letter(delivery, self._peek(delivery), exc.reason, exc.detail,
                                    None, failure=exc)
            return
        _belongs_to(message, delivery.queue)
        try:
            canvas.read_canvas(message)
        except canvas.CanvasUnsupported as exc:
            log.error("task %s[%s] refused: %s", message.task, message.id, exc.detail)
            await self._dead_letter(delivery, message, exc.reason, exc.detail, None,
                                    failure=exc)
            return
        now = time.time()
        if message.expires is not None and message.expires.timestamp() <= now:
            await self._expire(delivery, message)
            return
        if message.id in self.revoked:
            await self._skip_revoked(delivery, message, "revoked")
            return
        if message.eta is not None and message.eta.timestamp() > now + ETA_TOLERANCE_S:
            await self._settle(delivery.schedule(message, delivery.raw, message.eta.timestamp(),
                                                 why="scheduled"))
            return
        task = self._app.tasks.get(message.task)
        if task is None:
            await self._defer_unknown(delivery, message, now)
            return
        try:
            call = versioning.prepare(task, message)
        except PayloadError as exc:
            log.error("task %s[%s] has invalid arguments: %s", message.task, message.id, exc)
            tb = "".join(traceback.format_exception(exc)) if exc.__cause__ else None
            await self._dead_letter(delivery, message, "payload_invalid", str(exc), tb,
                                    failure=exc)
            return
        if isinstance(call, versioning.TooNew):
            why = call.describe(message.task)
            await self._defer(delivery, message, now, "version_too_new", why,
                              results.failure(message.id, PayloadError("version_too_new", why),
                                              None))
            return
        versioning.forget_deferrals(message)
        if call.upgraded_from is not None:
            log.debug("task %s[%s]: version %d payload upgraded to %d", message.task,
                      message.id, call.upgraded_from, task.version)
        args, kwargs = call.args, call.kwargs
        if message.idempotency_key is not None and await self._ran_before(delivery, message):
            return
        if task.rate is not None and await defer_if_limited(delivery, message, task, self._settle):
            return  # parked in the delayed set until its rate-limit token is due
        with self._tracer.run_span(message, delivery, self._worker_id):
            await self._run(delivery, message, task, args, kwargs)

    async def _quarantine(self, delivery: Delivery, error: Exception) -> None:
        """The backstop: something about this message raised where nothing should (a
        shape no check foresaw). Dead-letter it with the error, never retry it; the worker
        goes on with the next message."""
        if delivery.settled is not None:
            log.exception("error after message from %r was settled", delivery.queue)
            return
        log.error("dead-lettering a message from %r that could not be handled: %r",
                  delivery.queue, error)
        tb = "".join(traceback.format_exception(error))
        why = f"the worker could not handle this message: {type(error).__name__}: {error}"
        # What the headers say may be what broke it: then the entry is built from the
        # bytes alone.
        for message in (self._peek(delivery), None):
            try:
                await self._dead_letter(delivery, message, "payload_invalid", why, tb)
                return
            except Exception:
                log.exception("could not dead-letter a message from %r", delivery.queue)

    @staticmethod
    def _peek(delivery: Delivery) -> TaskMessage | None:
        """What an undecodable message's headers still say, filed under its queue."""
        message = wire.peek(delivery.raw)
        if message is not None:
            _belongs_to(message, delivery.queue)
        return message

    async def _ran_before(self, delivery: Delivery, message: TaskMessage) -> bool:
        """An idempotent call that already succeeded is acked with that result, not run
        again (a redelivery after a resurrection, or a dispatch that outlived its record);
        one whose other delivery is running now waits in the delayed set, then finds it
        succeeded (or runs, if that run failed)."""
        earlier = await delivery.begin_idempotent(message)
        if earlier is None:
            return False
        if earlier.status == "pending":
            log.info("task %s[%s]: the same call runs now as %s; waiting %.0fs",
                     message.task, message.id, earlier.task_id, BUSY_WAIT_S)
            await self._settle(delivery.schedule(message, delivery.raw,
                                                 time.time() + BUSY_WAIT_S))
            return True
        payload, value = b"", None
        if earlier.result:
            try:
                meta = results.decode(earlier.result)
                meta.task_id = message.id
                payload, value = results.encode(meta), meta.result
            except PayloadError as exc:
                log.warning("the stored result of %s is unreadable (%s); acked without it",
                            message.idempotency_key, exc)
        log.info("task %s[%s] already succeeded under idempotency key %s; not run again",
                 message.task, message.id, message.idempotency_key)
        # Its chain and callbacks go on with the earlier run's result.
        follow_ups = self._follow_ups(message, lambda c: canvas.after_success(
            message, c, value, self._route(message), self._worker_id))
        await self._settle(delivery.ack(message, payload, self._settings.result_ttl,
                                        why="already_done", follow_ups=follow_ups))
        return True

    async def _run(
        self, delivery: Delivery, message: TaskMessage, task: Task[Any, Any],
        args: list[Any], kwargs: dict[str, Any],
    ) -> None:
        facts = ResultFacts(message, self._worker_id, self._settings.result_extended)
        context = TaskContext(
            id=message.id,
            name=message.task,
            queue=message.origin_queue,
            attempt=message.retries + 1,
            resurrections=message.resurrections,
            idempotency_key=message.idempotency_key,
            worker_id=self._worker_id,
            reporter=ProgressReporter(self._app, message, facts),
        )
        started = time.monotonic()
        with self.terminations.running(message.id, is_async=task.is_async) as run:
            ok, value = await self._call(task, args, kwargs, context, message)
        elapsed = time.monotonic() - started
        if run.revoked:
            # Revoked with terminate: an async task was cancelled, a sync task ran on and
            # its result is discarded.
            await self._skip_revoked(delivery, message, "terminated", facts)
            return
        payload, plain = b"", None
        if ok:
            try:
                payload, plain = self._success(message, task, value, facts, elapsed)
            except TypeError as exc:
                ok, value = False, exc
        if not ok:
            await self._failed(delivery, message, task, value, elapsed, facts)
            return
        # Its outcome line (success, or stale) is the recorder's: observability/recorder.py.
        follow_ups = self._follow_ups(message, lambda c: canvas.after_success(
            message, c, plain, self._route(message), self._worker_id))
        await self._settle(delivery.ack(message, payload, self._settings.result_ttl,
                                        follow_ups=follow_ups))

    def _route(self, message: TaskMessage) -> canvas.Route:
        """Where a follow-up goes when its options name no queue: the queue of the task
        as registered here, else the queue its parent came from."""
        def route(sig: canvas.Signature) -> str:
            task = self._app.tasks.get(sig.task)
            return task.queue if task is not None else message.origin_queue
        return route

    @staticmethod
    def _follow_ups(
        message: TaskMessage | None, build: Callable[[canvas.Canvas], canvas.FollowUps],
    ) -> canvas.FollowUps:
        """What the settle sends with it; nothing for a message without a canvas (or one
        refused for its canvas, which was checked before it ran)."""
        if message is None or not any(message.embed.values()):
            return canvas.NONE
        try:
            return build(canvas.read_canvas(message))
        except canvas.CanvasUnsupported:
            return canvas.NONE
        except Exception:  # a bug here must not take the worker (and its tasks) down
            log.exception("task %s[%s]: building what follows it failed; none of its "
                          "canvas (chain, callbacks, chord) is sent", message.task, message.id)
            return canvas.NONE

    async def _call(
        self, task: Task[Any, Any], args: list[Any], kwargs: dict[str, Any],
        context: TaskContext, message: TaskMessage,
    ) -> tuple[bool, Any]:
        """``(True, value)`` or ``(False, the exception)``; cancellation from outside
        (shutdown, the hard timeout, a revoke with terminate) propagates."""
        try:
            return True, await self.caller.call(task, args, kwargs, context,
                                                limits_for(task, message))
        except Exception as exc:
            return False, exc
        except asyncio.CancelledError as exc:
            if _cancelled_from_outside():
                raise
            # The task's code raised CancelledError itself (it awaited something that
            # was cancelled). Letting it escape would stop the whole worker, which gives
            # the message back, and the next worker would stop the same way.
            return False, exc

    async def _failed(
        self, delivery: Delivery, message: TaskMessage, task: Task[Any, Any],
        error: BaseException, elapsed: float, facts: ResultFacts,
    ) -> None:
        """Retry later through the delayed set if the task allows it; else dead-letter."""
        attempt = message.retries + 1
        tb = retry.traceback_of(error)
        delay = retry.retry_delay(task, message, error)
        if delay is not None:
            now = time.time()
            log.warning("task %s[%s] failed after %.3fs (attempt %d of %d): %s; retrying in "
                        "%.3fs", message.task, message.id, elapsed, attempt, task.retries + 1,
                        retry.describe(error), delay)
            interim = results.encode(facts.complete(retry.retrying_result(message, error, tb)))
            following = retry.next_attempt(message, delay, now)
            await self._settle(delivery.schedule(message, wire.encode(following), now + delay,
                                                 interim, self._settings.result_ttl, why="retry"))
            return
        reason = "hard_timeout" if isinstance(error, HardTimeout) else "exception"
        # Its outcome line (failure, or timeout) is the recorder's.
        await self._dead_letter(delivery, message, reason, retry.describe(error), tb,
                                result=facts.complete(retry.failure_result(message, error, tb),
                                                      elapsed),
                                elapsed=elapsed)

    def _success(
        self, message: TaskMessage, task: Task[Any, Any], value: Any, facts: ResultFacts,
        runtime_s: float,
    ) -> tuple[bytes, Any]:
        """The stored result (``b""`` when ignored) and the value as plain JSON data (what
        a chain's next step and the callbacks receive)."""
        if task.ignore_result or message.ignore_result:
            return b"", _plain_or_none(value)
        try:
            plain = msgspec.to_builtins(value)
            meta = results.success(message.id, plain)
            return results.encode(facts.complete(meta, runtime_s)), plain
        except (TypeError, msgspec.EncodeError) as exc:
            raise TypeError(f"return value of {task.name} is not JSON-serialisable: {exc}") from exc

    async def _expire(self, delivery: Delivery, message: TaskMessage) -> None:
        log.warning("task %s[%s] expired at %s; not run", message.task, message.id,
                    message.expires)
        await self._dead_letter(delivery, message, "expired", "expired before it could run",
                                None, result=results.revoked(message.id, "expired"))

    async def _skip_revoked(self, delivery: Delivery, message: TaskMessage, reason: str,
                            facts: ResultFacts | None = None) -> None:
        """Not run (``revoked``) or stopped (``terminated``): acked with Celery's REVOKED."""
        log.warning("task %s[%s] %s; not run%s", message.task, message.id,
                    "revoked" if reason == "revoked" else "revoked and terminated",
                    "" if reason == "revoked" else " to the end (its result is discarded)")
        facts = facts or ResultFacts(message, self._worker_id, self._settings.result_extended)
        meta = facts.complete(results.revoked(message.id, reason))
        follow_ups = self._follow_ups(message, lambda c: canvas.after_revoke(
            message, c, meta, self._route(message), self._worker_id))
        await self._settle(delivery.ack(message, results.encode(meta),
                                        self._settings.result_ttl, why=reason,
                                        follow_ups=follow_ups))

    async def _defer_unknown(self, delivery: Delivery, message: TaskMessage, now: float) -> None:
        """An unknown task waits (a newer worker may be rolling out), then is dead-lettered
        as ``unknown_task`` with Celery's ``NotRegistered`` as its result."""
        not_registered = results.failure_from(
            message.id, "NotRegistered", "celery.exceptions", [message.task], None)
        await self._defer(delivery, message, now, "unknown_task",
                          f"no task named {message.task!r} is registered", not_registered)

    async def _defer(
        self, delivery: Delivery, message: TaskMessage, now: float, reason: str, why: str,
        result: results.ResultMeta,
    ) -> None:
        """Park a message this worker cannot run in its queue's deferred set until
        ``defer_window`` ends (a worker that can run it takes it out sooner: deferred.py);
        past the window, dead-letter it with ``reason``."""
        deferral = versioning.next_attempt(message, now, self._settings.defer_window)
        if deferral.due is None:
            log.error("%s; dead-lettering %s as %s after %.0fs", why, message.id, reason,
                      deferral.waited)
            await self._dead_letter(delivery, message, reason, why, None, result=result)
            return
        first = (reason, message.task) not in self._deferral_noted
        self._deferral_noted.add((reason, message.task))
        # The first deferral of a name says why and what to do; the rest are debug lines.
        log.log(logging.WARNING if first else logging.DEBUG,
                "%s; deferring %s until a worker that can run it takes it (at most %.0fs)%s",
                why, message.id, deferral.window_ends - now,
                self._deferral_hint(reason) if first else "")
        await self._settle(delivery.defer(message, wire.encode(message), deferral.window_ends))

    def _deferral_hint(self, reason: str) -> str:
        window = f"dead-lettered as {reason} after {self._settings.defer_window:.0f}s"
        if reason != "unknown_task":
            return f" (a newer worker may be rolling out; {window})"
        names = sorted(self._app.tasks)
        known = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5
                                        else "") if names else "none"
        return (f" (this worker registers: {known}; start one with -A naming the module "
                f"that defines it; until then it waits, and is {window}; "
                "further deferrals of this name are logged at debug level)")

    async def _dead_letter(
        self,
        delivery: Delivery,
        message: TaskMessage | None,
        reason: str,
        error: str,
        tb: str | None,
        *,
        failure: BaseException | None = None,
        result: results.ResultMeta | None = None,
        elapsed: float | None = None,
    ) -> None:
        task_id = message.id if message else ""
        envelope, envelope_raw = dead_letter.original_message(delivery.raw)
        entry = dead_letter.DeadLetter(
            task_id=message.id if message else None,
            task=message.task if message else None,
            queue=message.origin_queue if message else delivery.queue,
            reason=reason,
            error=error,
            traceback=tb,
            attempts=message.retries + 1 if message else 1,
            resurrections=message.resurrections if message else 0,
            worker=self._worker_id,
            failed_at=time.time(),
            message=envelope,
            message_raw=envelope_raw,
            elapsed=elapsed,
            replays=message.replays if message else 0,
        )
        if result is None and failure is not None and message is not None:
            result = results.failure(message.id, failure, tb)
        stored = results.encode(result) if result is not None and task_id else b""
        follow_ups = canvas.NONE
        if message is not None and result is not None:
            final, route = result, self._route(message)
            follow_ups = self._follow_ups(message, lambda c: canvas.after_failure(
                message, c, final, route, self._worker_id))
        await self._settle(delivery.dead_letter(
            message, dead_letter.encode(entry), stored, self._settings.result_ttl, entry.queue,
            follow_ups=follow_ups))

    async def _settle(self, settle: Any) -> bool:
        """Await a settle. The settler shields it from cancellation and bounds it
        (delivery.py): a task that finished during shutdown still gets its result
        recorded, and a settle that cannot land gives up after ``SETTLE_TIMEOUT_S``."""
        return bool(await settle)


def _plain_or_none(value: Any) -> Any:
    """An ignored result as JSON data for a chain or callback; None when it is not JSON
    (a task that keeps no result may return anything)."""
    try:
        return msgspec.to_builtins(value)
    except (TypeError, msgspec.EncodeError):
        return None


def _belongs_to(message: TaskMessage, taken_from: str) -> None:
    """File the message under the queue it was taken from (see ``wire.home_queue``):
    its retries, deferrals and dead letters go there, whatever ``delivery_info`` says."""
    home = wire.home_queue(taken_from, message.headers)
    message.queue = home
    if wire.ORIGIN_QUEUE_HEADER in message.headers:
        message.headers[wire.ORIGIN_QUEUE_HEADER] = home


def _cancelled_from_outside() -> bool:
    """Whether the running asyncio task has a cancellation request pending (anyio's cancel
    scopes, and so shutdown and hard timeouts, request cancellation of the task)."""
    task = asyncio.current_task()
    return task is None or task.cancelling() > 0
