"""``TaskHandle``: the id of a pushed task, and a way to wait for its result.

Waiting follows Celery's own reader: subscribe to the result's channel first, then read
the key once, then only listen. A result that landed before the wait began is found by
the read; one that lands after is delivered by the notification. Nothing polls.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, Final, Generic, TypeVar

import anyio
import msgspec

from relier.errors import BrokerUnavailable, ResultTimeout, TaskFailed
from relier.protocol import pidbox, results
from relier.protocol.results import ResultMeta
from relier.settings import redact
from relier.store import control as control_store
from relier.store import results as result_store
from relier.store.errors import StoreConnectionError as RedisConnectionError
from relier.store.errors import StoreTimeoutError as RedisTimeoutError

if TYPE_CHECKING:
    from relier.app import App

R = TypeVar("R")

#: Seconds a revoke broadcast stays valid (a worker ignores it after that, as kombu's do).
REVOKE_BROADCAST_TTL_S: Final = 60.0


class TaskHandle(Generic[R]):
    """A pushed task. ``await h.aresult(timeout)`` or ``h.result(timeout)`` for its value."""

    __slots__ = ("_app", "_meta", "_return_type", "id")

    def __init__(
        self,
        app: App,
        task_id: str,
        *,
        return_type: Any = Any,
        meta: ResultMeta | None = None,
    ) -> None:
        self._app = app
        self.id = task_id
        self._return_type = return_type
        self._meta = meta

    def __repr__(self) -> str:
        return f"<TaskHandle {self.id}>"

    async def aresult(self, timeout: float | None = None) -> R:
        """The task's return value; ``TaskFailed`` if it failed; ``ResultTimeout`` if late."""
        if self._meta is None or not self._meta.ready:
            self._meta = await _await_ready(self._app, self.id, timeout)
        return self._unwrap(self._meta)

    def result(self, timeout: float | None = None) -> R:
        """Blocking form of :meth:`aresult`, for sync code (Flask, Django, scripts)."""
        if self._meta is None or not self._meta.ready:
            self._meta = _wait_ready(self._app, self.id, timeout)
        return self._unwrap(self._meta)

    async def astatus(self) -> str:
        """The stored state (``PENDING`` when nothing is stored yet)."""
        raw = await result_store.stored(self._app.broker().client, self.id)
        return results.decode(raw).status if raw else results.PENDING

    def status(self) -> str:
        raw = result_store.stored_sync(self._app.sync_client(), self.id)
        return results.decode(raw).status if raw else results.PENDING

    @property
    def state(self) -> str:
        """The stored state, as Celery's ``AsyncResult.state``: ``PENDING`` (nothing
        stored yet), a custom state such as ``PROGRESS``, ``RETRY``, ``SUCCESS``,
        ``FAILURE`` or ``REVOKED``. One read of Redis per access."""
        return self.status()

    @property
    def info(self) -> Any:
        """What goes with the state, as Celery's ``AsyncResult.info``: the ``meta`` of a
        custom state (``update_state``), the return value after ``SUCCESS``, a
        :class:`TaskFailed` (not raised) for ``FAILURE``/``RETRY``/``REVOKED``, None while
        ``PENDING``. One read of Redis per access."""
        return self._info_of(result_store.stored_sync(self._app.sync_client(), self.id))

    async def ainfo(self) -> Any:
        """:attr:`info` from async code."""
        return self._info_of(await result_store.stored(self._app.broker().client, self.id))

    def revoke(self, *, terminate: bool = False) -> None:
        """Revoke the task, as Celery's ``AsyncResult.revoke``: a worker that takes it
        later does not run it (the id is kept in Redis for ``revoke_ttl``), and a task
        not started yet reads ``REVOKED`` at once. With ``terminate=True`` a running
        ``async def`` task is cancelled; a running ``def`` task runs on and its result is
        discarded (``REVOKED`` is stored). Celery workers sharing the queues hear it too."""
        client = self._app.sync_client()
        control_store.revoke_sync(client, self._revocation())
        control_store.broadcast_sync(client, _revoke_request([self.id], terminate))

    async def arevoke(self, *, terminate: bool = False) -> None:
        """:meth:`revoke` from async code."""
        broker = self._app.broker()
        await control_store.revoke(broker.client, self._revocation())
        await control_store.abroadcast(broker.client, _revoke_request([self.id], terminate))

    def _revocation(self) -> control_store.Revocation:
        settings = self._app.settings
        return control_store.Revocation([self.id], settings.revoke_ttl, settings.result_ttl)

    def _info_of(self, raw: bytes | str | None) -> Any:
        if raw is None:
            return None
        meta = results.decode(raw)
        if meta.status in results.EXCEPTION_STATES:
            exc_type, exc_module, message = meta.exception
            return TaskFailed(self.id, meta.status, exc_type, exc_module, message,
                              meta.traceback)
        return meta.result

    def _unwrap(self, meta: ResultMeta) -> R:
        if meta.status == results.SUCCESS:
            if self._return_type is Any:
                return meta.result  # type: ignore[no-any-return]
            try:
                return msgspec.convert(meta.result, self._return_type, strict=False)  # type: ignore[no-any-return]
            except msgspec.ValidationError:
                return meta.result  # type: ignore[no-any-return]
        exc_type, exc_module, message = meta.exception
        raise TaskFailed(self.id, meta.status, exc_type, exc_module, message, meta.traceback)


def _revoke_request(task_ids: list[str], terminate: bool) -> bytes:
    arguments = {"task_id": task_ids, "terminate": terminate,
                 "signal": "SIGTERM" if terminate else None}
    return pidbox.request("revoke", arguments, time.time() + REVOKE_BROADCAST_TTL_S, 1)


def _ready_meta(raw: bytes | str | None) -> ResultMeta | None:
    if raw is None:
        return None
    meta = results.decode(raw)
    return meta if meta.ready else None


async def _await_ready(app: App, task_id: str, timeout: float | None) -> ResultMeta:
    client = app.broker().client
    try:
        async with result_store.watch(client, task_id) as published:
            meta = _ready_meta(await result_store.stored(client, task_id))
            if meta is not None:
                return meta
            with anyio.move_on_after(timeout):
                while True:
                    meta = _ready_meta(await published.next())
                    if meta is not None:
                        return meta
    except (RedisConnectionError, RedisTimeoutError) as exc:
        raise BrokerUnavailable(redact(app.settings.redis_url), exc) from exc
    raise ResultTimeout(task_id, timeout or 0.0)


def _wait_ready(app: App, task_id: str, timeout: float | None) -> ResultMeta:
    client = app.sync_client()
    deadline = None if timeout is None else time.monotonic() + timeout
    try:
        with result_store.watch_sync(client, task_id) as published:
            meta = _ready_meta(result_store.stored_sync(client, task_id))
            while meta is None:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    raise ResultTimeout(task_id, timeout or 0.0)
                # Blocks on the socket for at most `remaining` (None: until a message).
                meta = _ready_meta(published.next(remaining))
            return meta
    except (RedisConnectionError, RedisTimeoutError) as exc:
        raise BrokerUnavailable(redact(app.settings.redis_url), exc) from exc
