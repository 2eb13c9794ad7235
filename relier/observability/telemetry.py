"""Everything one worker reports about itself, set up and torn down in one place, so
the worker's lifecycle code needs only a few lines for it.

* metrics, served on ``metrics_port`` (off when 0), or written to the supervisor's
  shared files when the worker is one of ``--processes N``;
* the event-loop lag probe (with metrics);
* Celery events for Flower (with ``events``);
* the :class:`TaskRecorder` the executor and the heartbeat use.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

import anyio

from relier.app import App
from relier.observability.events import EventSender
from relier.observability.metrics import (
    MetricsServer,
    QueueCollector,
    RuntimeTotals,
    WorkerMetrics,
    multiprocess_child,
)
from relier.observability.recorder import TaskRecorder
from relier.observability.tracing import RunTracing
from relier.store import connections
from relier.store.clients import SyncClient
from relier.store.control import db_of

if TYPE_CHECKING:
    from relier.runtime.deadlines import Caller
    from relier.runtime.watchdog import Watchdog

log = logging.getLogger("relier.worker")


class Telemetry:
    """Metrics, events and the task recorder of one worker process."""

    def __init__(self, app: App, worker_id: str, in_flight: Callable[[], int]) -> None:
        settings = app.settings
        served = settings.metrics_port > 0 and not multiprocess_child()
        self.metrics = WorkerMetrics() if served or multiprocess_child() else None
        self._server: MetricsServer | None = None
        if served and self.metrics is not None:
            self.metrics.registry.register(QueueCollector(lambda: _scrape_client(app)))
            self._server = MetricsServer(self.metrics.registry, settings.metrics_host,
                                         settings.metrics_port)
        self.events: EventSender | None = None
        if settings.events:
            client = app.async_client()
            db = db_of(client)
            self.events = EventSender(client, db, f"relier@{worker_id}",
                                      settings.heartbeat_interval, in_flight)
        self.recorder = TaskRecorder(worker_id, self.metrics, self.events)
        #: How the executor traces each run (OpenTelemetry, when on and configured).
        self.tracer = RunTracing(settings.tracing)
        self._in_flight = in_flight
        self._totals: Callable[[], RuntimeTotals] | None = None

    def follow(self, caller: Caller, watchdog: Watchdog) -> None:
        """Sample the timeout and watchdog counts these keep into the metrics."""
        self._totals = lambda: RuntimeTotals(
            soft_timeouts=caller.soft_timeouts, hard_timeouts=caller.hard_timeouts,
            loop_stalls=watchdog.stalls, abandoned_threads=caller.abandoned.running)

    async def run(self) -> None:
        """The background work (lag probe, event publishing); runs until cancelled."""
        async with anyio.create_task_group() as tg:
            if self.metrics is not None:
                tg.start_soon(self.metrics.sample, self._in_flight, self._totals,
                              name="relier sampler")
            if self.events is not None:
                tg.start_soon(self.events.run, name="relier events")

    async def aclose(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        if self.events is not None:
            await self.events.aclose()


def _scrape_client(app: App) -> SyncClient:
    """A blocking client of its own for the scrape thread (short timeouts: a scrape must
    answer even when Redis does not)."""
    return connections.sync_client(app.settings.redis_url, socket_timeout=3,
                                socket_connect_timeout=3)
