"""Turning calls into Celery messages and putting them on Redis, from sync or async code.

Every message of a batch goes out in one pipelined round trip. Arguments are checked
against the task's type hints first, so a wrong call fails here, before anything is
enqueued, with an error that names the argument.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeVar

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from relier.broker import Outgoing, stage_enqueue
from relier.errors import BrokerUnavailable
from relier.handle import TaskHandle
from relier.protocol import message as wire
from relier.settings import redact

if TYPE_CHECKING:
    from relier.app import App
    from relier.task import CallSpec, PushOptions, Task

R = TypeVar("R")

_ORIGIN = f"gen{os.getpid()}@{socket.gethostname()}"


class Producer:
    """Builds and sends the messages of one App's pushes."""

    def __init__(self, app: App) -> None:
        self._app = app
        self._announced_sync: set[str] = set()

    def prepare(
        self, task: Task[Any, R], calls: Sequence[CallSpec], options: PushOptions
    ) -> tuple[list[Outgoing], list[TaskHandle[R]]]:
        """Validate every call and encode its message; nothing is sent yet."""
        now = datetime.now(UTC)
        queue = options.queue or task.queue
        # A naive datetime is taken as UTC, the rule the worker applies when decoding.
        eta = wire.aware(options.eta) if options.eta is not None else None
        if options.countdown is not None:
            eta = now + timedelta(seconds=options.countdown)
        expires = options.expires
        if isinstance(expires, int | float):
            expires = now + timedelta(seconds=expires)
        elif expires is not None:
            expires = wire.aware(expires)
        due_ms = int(eta.timestamp() * 1000) if eta is not None and eta > now else None
        outgoing: list[Outgoing] = []
        handles: list[TaskHandle[R]] = []
        for args, kwargs in calls:
            wire_args, wire_kwargs = task.arguments.to_wire(tuple(args), dict(kwargs))
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
                extra_headers={wire.VERSION_HEADER: task.version},
            )
            outgoing.append(Outgoing(queue, wire.encode(message), options.priority, due_ms))
            handles.append(
                TaskHandle(self._app, message.id, return_type=task.arguments.return_type)
            )
        return outgoing, handles

    def push(
        self, task: Task[Any, R], calls: Sequence[CallSpec], options: PushOptions
    ) -> list[TaskHandle[R]]:
        outgoing, handles = self.prepare(task, calls, options)
        try:
            with self._app.sync_client().pipeline(transaction=False) as pipe:
                stage_enqueue(pipe, outgoing, self._announced_sync)
                pipe.execute()
        except (RedisConnectionError, RedisTimeoutError) as exc:
            raise BrokerUnavailable(redact(self._app.settings.redis_url), exc) from None
        self._announced_sync.update(m.queue for m in outgoing)
        return handles

    async def apush(
        self, task: Task[Any, R], calls: Sequence[CallSpec], options: PushOptions
    ) -> list[TaskHandle[R]]:
        outgoing, handles = self.prepare(task, calls, options)
        try:
            await self._app.broker().enqueue(outgoing)
        except (RedisConnectionError, RedisTimeoutError) as exc:
            raise BrokerUnavailable(redact(self._app.settings.redis_url), exc) from None
        return handles
