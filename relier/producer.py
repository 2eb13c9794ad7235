"""Turning calls into Celery messages and putting them on Redis, from sync or async code.

Every message of a batch goes out in one script call, one round trip, which also decides
admission (a full queue refuses the whole batch with ``AdmissionRejectedError``) and
idempotency (a call that an earlier dispatch owns is not enqueued again; its handle is
that dispatch's, with the result already in it when it succeeded). Arguments are checked
against the task's type hints first, so a wrong call fails here, before anything is
enqueued, with an error that names the argument.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeVar

from relier import otel
from relier.config_errors import explain
from relier.errors import (
    AdmissionRejectedError,
    ArgumentError,
    BrokerUnavailable,
    ConfigurationError,
)
from relier.handle import TaskHandle
from relier.protocol import message as wire
from relier.protocol import results
from relier.protocol.results import ResultMeta
from relier.settings import redact
from relier.store.broker import Enqueued, Outgoing, enqueue_sync
from relier.store.cluster import is_cluster_url, require_tags
from relier.store.errors import ClusterUnavailable, OutOfMemoryError, ReadOnlyError
from relier.store.errors import ErrorReply as ResponseError
from relier.store.errors import StoreConnectionError as RedisConnectionError
from relier.store.errors import StoreTimeoutError as RedisTimeoutError
from relier.store.settles import Record

if TYPE_CHECKING:
    from relier.app import App
    from relier.task import CallSpec, PushOptions, Task

R = TypeVar("R")

#: What Redis can answer a push with instead of taking it: unreachable, out of memory,
#: or a read-only replica (a failover in progress).
REFUSALS = (RedisConnectionError, RedisTimeoutError, OutOfMemoryError, ReadOnlyError,
            *ClusterUnavailable)
#: Also looked at (by ``config_errors.explain``): a database out of range, a password
#: wanted; any other error reply propagates unchanged.
MAYBE_CONFIG = (ResponseError,)
#: ``retry_after`` when Redis itself refused a push for memory.
MEMORY_RETRY_AFTER_S = 5.0

_ORIGIN = f"gen{os.getpid()}@{socket.gethostname()}"


class Producer:
    """Builds and sends the messages of one App's pushes."""

    def __init__(self, app: App) -> None:
        self._app = app

    def prepare(
        self, task: Task[Any, R], calls: Sequence[CallSpec], options: PushOptions,
        trace_headers: Mapping[str, str] = otel.NO_HEADERS,
    ) -> Outgoing:
        """Validate every call and encode its message; nothing is sent yet.

        ``trace_headers`` (the push span's trace context) go into every message."""
        settings = self._app.settings
        now = datetime.now(UTC)
        queue = options.queue or task.queue
        if is_cluster_url(settings.redis_url):
            require_tags([queue])
        # A naive datetime is taken as UTC, the rule the worker applies when decoding.
        eta = wire.aware(options.eta) if options.eta is not None else None
        if options.countdown is not None:
            eta = now + timedelta(seconds=options.countdown)
        expires = options.expires
        if isinstance(expires, int | float):
            expires = now + timedelta(seconds=expires)
        elif expires is not None:
            expires = wire.aware(expires)
        if options.idempotency_key is not None and len(calls) > 1:
            raise ArgumentError(
                f"{task.name}: one idempotency_key cannot name {len(calls)} different calls; "
                "push them one by one with a key each, or declare the task idempotent=True")
        idempotent = task.idempotent or options.idempotency_key is not None
        idempotency_ttl = task.idempotency_ttl or settings.idempotency_ttl
        messages: list[tuple[bytes, str]] = []
        records: list[str] = []
        for args, kwargs in calls:
            wire_args, wire_kwargs = task.arguments.to_wire(tuple(args), dict(kwargs))
            headers: dict[str, Any] = {wire.VERSION_HEADER: task.version,
                                       wire.SENT_AT_HEADER: round(now.timestamp(), 3),
                                       **trace_headers, **(options.headers or {})}
            if idempotent:
                key = options.idempotency_key or task.arguments.fingerprint(wire_args, wire_kwargs)
                headers[wire.IDEMPOTENCY_HEADER] = key
                headers[wire.IDEMPOTENCY_TTL_HEADER] = idempotency_ttl
                records.append(Record(task=task.name, key=key, queue=queue).name)
            message = wire.build(
                task.name,
                wire_args,
                wire_kwargs,
                queue=queue,
                task_id=options.task_id if len(calls) == 1 else None,
                priority=options.priority,
                eta=eta,
                expires=expires,
                hard_timeout=options.hard_timeout or task.hard_timeout,
                soft_timeout=options.soft_timeout or task.soft_timeout,
                ignore_result=task.ignore_result,
                origin=_ORIGIN,
                extra_headers=headers,
            )
            raw = wire.encode(message)
            if len(raw) > settings.max_message_bytes:
                # A worker would dead-letter it unread; say so before anything is sent.
                raise ArgumentError(
                    f"{task.name}(): the message would be {len(raw):,} bytes, over the limit "
                    f"of {settings.max_message_bytes:,} (setting max_message_bytes); "
                    "pass a reference (a key, a URL) to large data instead")
            messages.append((raw, message.id))
        return Outgoing(
            queue,
            messages,
            priority=options.priority,
            due_ms=int(eta.timestamp() * 1000) if eta is not None and eta > now else None,
            depth_limit=task.max_queue_depth or settings.queue_limits.get(queue, 0),
            memory_limit=settings.broker_memory_limit,
            idempotency_records=records,
            idempotency_ttl=idempotency_ttl,
            replicas=_replica_acks(settings.replica_acks, settings.replica_ack_timeout),
            replica_timeout_s=settings.replica_ack_timeout,
        )

    def push(
        self, task: Task[Any, R], calls: Sequence[CallSpec], options: PushOptions
    ) -> list[TaskHandle[R]]:
        """Enqueue from sync code; one round trip for the whole batch."""
        with self._span(task, options) as span:
            batch = self.prepare(task, calls, options, span.headers)
            try:
                enqueued = enqueue_sync(self._app.sync_client(), batch)
            except (*REFUSALS, *MAYBE_CONFIG) as exc:
                raise self._refused(batch, exc) from None
            span.sent(enqueued)
        return self._handles(task, enqueued)

    async def apush(
        self, task: Task[Any, R], calls: Sequence[CallSpec], options: PushOptions
    ) -> list[TaskHandle[R]]:
        """Enqueue from async code; one round trip for the whole batch."""
        with self._span(task, options) as span:
            batch = self.prepare(task, calls, options, span.headers)
            try:
                enqueued = await self._app.broker().enqueue(batch)
            except (*REFUSALS, *MAYBE_CONFIG) as exc:
                raise self._refused(batch, exc) from None
            span.sent(enqueued)
        return self._handles(task, enqueued)

    def _span(
        self, task: Task[Any, R], options: PushOptions
    ) -> AbstractContextManager[otel.PushTrace]:
        """The push's trace span (a no-op without ``relier[otel]`` or with tracing off)."""
        return otel.push_span(task.name, options.queue or task.queue,
                                 otel.enabled(self._app.settings.tracing))

    def _refused(self, batch: Outgoing, exc: Exception) -> Exception:
        """Redis did not take the batch (nothing of it was enqueued): in Relier's terms."""
        if isinstance(exc, OutOfMemoryError):
            # Past maxmemory before the guard could see it (or with the guard off).
            return AdmissionRejectedError(batch.queue, 0, batch.depth_limit,
                                          MEMORY_RETRY_AFTER_S, reason="memory")
        if isinstance(exc, (ReadOnlyError, *ClusterUnavailable)):
            return BrokerUnavailable(redact(self._app.settings.redis_url), exc)
        return explain(self._app.settings.redis_url, exc) or exc

    def _handles(self, task: Task[Any, R], enqueued: list[Enqueued]) -> list[TaskHandle[R]]:
        return [
            TaskHandle(
                self._app, e.task_id, return_type=task.arguments.return_type,
                meta=_stored_result(e) if e.status == "done" else None,
            )
            for e in enqueued
        ]


def _stored_result(enqueued: Enqueued) -> ResultMeta:
    """The result an earlier run of an idempotent call left (one it did not keep is None)."""
    if enqueued.result:
        return results.decode(enqueued.result)
    return results.success(enqueued.task_id, None)


def _replica_acks(replicas: object, timeout: object) -> int:
    """The ``replica_acks`` setting, checked (one line, before anything is sent)."""
    if not isinstance(replicas, int) or isinstance(replicas, bool) or replicas < 0:
        raise ConfigurationError(f"replica_acks must be a whole number >= 0, got {replicas!r}")
    if replicas and (not isinstance(timeout, int | float) or timeout <= 0):
        raise ConfigurationError(
            f"replica_ack_timeout must be a number of seconds > 0, got {timeout!r}")
    return replicas
