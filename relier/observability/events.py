"""Celery's worker and task events, so that Flower (and ``celery events``) see Relier.

Off by default; ``relier worker --events`` (or ``RELIER_EVENTS=1``) turns it on. The
bytes are those a Celery worker started with ``-E`` publishes on Redis: a kombu
envelope (base64 JSON body, ``headers={"hostname": ...}``) PUBLISHed on the
``celeryev`` fanout channel ``/<db>.celeryev/<routing key>``. Task events are batched,
as Celery's own worker batches them: one ``task.multi`` message with a JSON list of
events per flush, so the cost is one PUBLISH per flush interval, not one per task.

Worker events: ``worker-online`` at start, ``worker-heartbeat`` every
``heartbeat_interval`` (Flower marks a worker offline after two missed beats),
``worker-offline`` on a clean stop. They go out from the event loop, as Celery's do.
"""

from __future__ import annotations

import base64
import itertools
import logging
import os
import platform
import time
import uuid
from collections.abc import Callable
from typing import Any, Final

import anyio
import msgspec

from relier.store import channels
from relier.store.clients import AsyncClient
from relier.store.errors import StoreError as RedisError

log = logging.getLogger("relier.events")

#: Seconds between flushes of buffered task events.
FLUSH_S: Final = 0.25
#: At most this many task events wait for a flush; past it the oldest are dropped
#: (events are a monitoring feed, not a record, and must never grow a worker's memory).
MAX_BUFFER: Final = 10_000
EXCHANGE: Final = "celeryev"

_encoder: Final = msgspec.json.Encoder()


def channel(db: int, routing_key: str) -> str:
    """The pub/sub channel kombu's Redis transport uses for a fanout message."""
    return f"/{db}.{EXCHANGE}/{routing_key}"


def envelope(payload: Any, hostname: str, routing_key: str) -> bytes:
    """A kombu message carrying one event (or a list of events) as Celery sends it."""
    return _encoder.encode({
        "body": base64.b64encode(_encoder.encode(payload)).decode("ascii"),
        "content-encoding": "utf-8",
        "content-type": "application/json",
        "headers": {"hostname": hostname},
        "properties": {
            "delivery_mode": 1,
            "delivery_info": {"exchange": EXCHANGE, "routing_key": routing_key},
            "priority": 0,
            "body_encoding": "base64",
            "delivery_tag": str(uuid.uuid4()),
        },
    })


def _utcoffset() -> int:
    """Hours west of UTC, as Celery computes it for its events."""
    offset = time.altzone if time.daylight and time.localtime().tm_isdst > 0 else time.timezone
    return offset // 3600


class EventSender:
    """Buffers task events and publishes them, with the worker's own events, from
    :meth:`run` (a service in the worker's task group)."""

    def __init__(
        self,
        client: AsyncClient,
        db: int,
        hostname: str,
        heartbeat_s: float,
        active: Callable[[], int],
    ) -> None:
        self._client = client
        self._db = db
        self.hostname = hostname
        self._heartbeat_s = heartbeat_s
        self._active = active
        self._clock = itertools.count(1)
        self._buffer: list[dict[str, Any]] = []
        self.processed = 0
        self._pid = os.getpid()
        self._utcoffset = _utcoffset()
        self._failing = False

    def task(self, kind: str, task_id: str, **fields: Any) -> None:
        """Queue one ``task-<kind>`` event for the next flush."""
        if len(self._buffer) >= MAX_BUFFER:
            del self._buffer[: MAX_BUFFER // 10]
        self._buffer.append(self._event(f"task-{kind}", uuid=task_id, **fields))

    def _event(self, kind: str, **fields: Any) -> dict[str, Any]:
        return {"hostname": self.hostname, "utcoffset": self._utcoffset, "pid": self._pid,
                "clock": next(self._clock), **fields, "timestamp": time.time(), "type": kind}

    def _worker_event(self, kind: str) -> dict[str, Any]:
        return self._event(
            f"worker-{kind}", freq=self._heartbeat_s, active=self._active(),
            processed=self.processed, loadavg=_loadavg(), sw_ident="relier",
            sw_ver=_version(), sw_sys=platform.system(),
        )

    async def run(self) -> None:
        """Publish until cancelled; then flush and say ``worker-offline``."""
        await self._publish("worker.online", self._worker_event("online"))
        next_beat = time.monotonic() + self._heartbeat_s
        try:
            while True:
                await anyio.sleep(FLUSH_S)
                await self._flush()
                if time.monotonic() >= next_beat:
                    next_beat = time.monotonic() + self._heartbeat_s
                    await self._publish("worker.heartbeat", self._worker_event("heartbeat"))
        finally:
            with anyio.move_on_after(2, shield=True):
                await self._flush()
                await self._publish("worker.offline", self._worker_event("offline"))

    async def aclose(self) -> None:
        await self._client.aclose()

    async def _flush(self) -> None:
        if self._buffer:
            batch, self._buffer = self._buffer, []
            await self._publish("task.multi", batch)

    async def _publish(self, routing_key: str, payload: Any) -> None:
        try:
            await channels.publish(self._client, channel(self._db, routing_key),
                                   envelope(payload, self.hostname, routing_key))
        except (RedisError, OSError) as exc:
            if not self._failing:
                log.warning("could not publish events (%s); dropping them until Redis "
                            "answers", exc)
            self._failing = True
            return
        self._failing = False


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("relier")
    except PackageNotFoundError:
        return "0"


def _loadavg() -> list[float]:
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return [0.0, 0.0, 0.0]
