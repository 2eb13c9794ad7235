"""Prometheus metrics: what a worker counts itself, and what Redis says at scrape time.

Two kinds of numbers, kept apart on purpose:

* **Worker metrics** (:class:`WorkerMetrics`) are counted in the process that sees the
  event: task outcomes and durations, tasks in flight, resurrections done by this
  worker's resurrector, event-loop lag. Summed across workers they give the fleet.
* **Queue metrics** (:class:`QueueCollector`) are read from Redis when Prometheus
  scrapes: depth, age of the oldest message, delayed, in flight, DLQ size by reason,
  and the counters the scripts keep in each queue's stats hash (fetched, admission
  rejections, idempotent hits). Nothing is counted per task for them, and every worker
  reports the same values, so aggregate them with ``max by (queue)``, not ``sum``.

Each worker has its own registry (never prometheus-client's global one). Under
``relier worker --processes N`` the children write their worker metrics to
prometheus-client's multiprocess files and the supervisor serves one endpoint that
merges them (:func:`supervisor_registry`).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Final

import anyio
import redis
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import start_http_server
from prometheus_client.registry import Collector

from relier.errors import ConfigurationError
from relier.observability import inspect

log = logging.getLogger("relier.metrics")

#: Set by the supervisor for its children: their metrics go to files it merges.
MULTIPROC_ENV: Final = "PROMETHEUS_MULTIPROC_DIR"
#: Also set by the supervisor, so that a PROMETHEUS_MULTIPROC_DIR the user set for other
#: reasons does not make a plain worker think it is one of the supervisor's children.
SUPERVISED_METRICS_ENV: Final = "RELIER_SUPERVISED_METRICS"
#: Outcomes that ran the task (the others are decisions taken without running it).
RUN_OUTCOMES: Final = frozenset({"success", "failure", "timeout", "retry", "stale"})
#: Task durations, in seconds: from a millisecond to ten minutes.
DURATION_BUCKETS: Final = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
                           2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0)
#: How long after a worker's last heartbeat its tasks were recovered, in seconds.
RESURRECTION_BUCKETS: Final = (1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0, 15.0, 20.0, 30.0,
                               60.0, 120.0)
#: Seconds between event-loop lag probes.
LAG_PROBE_S: Final = 0.5


@dataclass(frozen=True, slots=True)
class RuntimeTotals:
    """Counts the runtime keeps for itself (timeouts, watchdog), read when sampling."""

    soft_timeouts: int = 0
    hard_timeouts: int = 0
    loop_stalls: int = 0
    abandoned_threads: int = 0


class WorkerMetrics:
    """The metrics one worker process counts, in a private registry."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry(auto_describe=True)
        r = self.registry
        self.tasks = Counter(
            "relier_tasks", "Tasks that ended, by task, queue and outcome.",
            ["task", "queue", "outcome"], registry=r)
        self.duration = Histogram(
            "relier_task_duration_seconds",
            "Seconds from taking a task to settling it, for runs (not deferrals).",
            ["task", "queue"], buckets=DURATION_BUCKETS, registry=r)
        self.in_flight = Gauge(
            "relier_worker_tasks_in_flight",
            f"Tasks this worker holds (sampled every {LAG_PROBE_S}s).",
            registry=r, multiprocess_mode="livesum")
        self.resurrections = Counter(
            "relier_resurrections",
            "Messages recovered from dead workers (requeued, or quarantined as poison).",
            ["queue", "action"], registry=r)
        self.resurrection_latency = Histogram(
            "relier_resurrection_latency_seconds",
            "Seconds from a dead worker's last heartbeat to the recovery of its tasks.",
            buckets=RESURRECTION_BUCKETS, registry=r)
        self.soft_timeouts = Counter(
            "relier_soft_timeouts", "Tasks that passed their soft timeout.", registry=r)
        self.hard_timeouts = Counter(
            "relier_hard_timeouts",
            "Tasks cancelled at their hard timeout (then retried or dead-lettered).",
            registry=r)
        self.loop_stalls = Counter(
            "relier_event_loop_stalls", "Times the watchdog saw the event loop blocked.",
            registry=r)
        self.abandoned_threads = Gauge(
            "relier_abandoned_threads",
            "Threads of sync tasks still running after their hard timeout.",
            registry=r, multiprocess_mode="livesum")
        self.schedule_ticks_sent = Counter(
            "relier_schedule_ticks_sent", "Periodic runs this worker sent as schedule leader.",
            ["schedule"], registry=r)
        self.schedule_ticks_missed = Counter(
            "relier_schedule_ticks_missed",
            "Periodic runs recorded as not sent: outage (missed= policy), admission, invalid.",
            ["schedule", "reason"], registry=r)
        self._last = RuntimeTotals()
        self._counters: dict[tuple[str, str, str], Counter] = {}
        self._histograms: dict[tuple[str, str], Histogram] = {}
        self.loop_lag = Gauge(
            "relier_event_loop_lag_seconds",
            "How late the event loop woke a timer at the last probe.",
            registry=r, multiprocess_mode="livemax")

    def task_ended(self, task: str, queue: str, outcome: str, duration_s: float) -> None:
        # Children are cached: ``labels()`` costs more than the increment itself.
        counter = self._counters.get((task, queue, outcome))
        if counter is None:
            counter = self._counters[(task, queue, outcome)] = self.tasks.labels(
                task, queue, outcome)
        counter.inc()
        if outcome in RUN_OUTCOMES:
            histogram = self._histograms.get((task, queue))
            if histogram is None:
                histogram = self._histograms[(task, queue)] = self.duration.labels(task, queue)
            histogram.observe(duration_s)

    def schedule_sent(self, schedule: str) -> None:
        self.schedule_ticks_sent.labels(schedule).inc()

    def schedule_missed(self, schedule: str, reason: str, count: int = 1) -> None:
        self.schedule_ticks_missed.labels(schedule, reason).inc(count)

    def resurrected(self, queue: str, action: str, count: int = 1) -> None:
        self.resurrections.labels(queue, action).inc(count)

    async def sample(
        self, in_flight: Callable[[], int], totals: Callable[[], RuntimeTotals] | None = None
    ) -> None:
        """Every ``LAG_PROBE_S``, forever: how late that sleep woke up (the event loop's
        lag), how many tasks are in flight, and the runtime's own totals (sampled rather
        than counted at each event, so the runtime needs no metrics calls of its own)."""
        while True:
            asked = time.monotonic()
            await anyio.sleep(LAG_PROBE_S)
            self.loop_lag.set(max(0.0, time.monotonic() - asked - LAG_PROBE_S))
            self.in_flight.set(in_flight())
            if totals is not None:
                self._catch_up(totals())

    def _catch_up(self, now: RuntimeTotals) -> None:
        last, self._last = self._last, now
        for counter, before, after in (
            (self.soft_timeouts, last.soft_timeouts, now.soft_timeouts),
            (self.hard_timeouts, last.hard_timeouts, now.hard_timeouts),
            (self.loop_stalls, last.loop_stalls, now.loop_stalls),
        ):
            if after > before:
                counter.inc(after - before)
        self.abandoned_threads.set(now.abandoned_threads)


class QueueCollector(Collector):
    """Queue-level gauges and Redis-kept counters, read from Redis at each scrape.

    Runs in the HTTP server's thread with its own blocking client, so a busy event
    loop never delays a scrape. When Redis is unreachable it reports ``relier_redis_up 0``
    and nothing else, instead of failing the whole scrape.
    """

    def __init__(self, client_factory: Callable[[], redis.Redis]) -> None:
        self._client_factory = client_factory
        self._client: redis.Redis | None = None

    def describe(self) -> Iterable[Metric]:
        return []  # families depend on Redis; never collect at registration time

    def collect(self) -> Iterable[Metric]:
        up = GaugeMetricFamily("relier_redis_up", "1 when the last scrape could read Redis.")
        try:
            if self._client is None:
                self._client = self._client_factory()
            reader = inspect.Inspector(self._client)
            queues = reader.queues()
            workers = reader.workers()
            counters = reader.queue_counters([q.name for q in queues])
        except redis.RedisError as exc:
            log.debug("metrics: cannot read Redis: %s", exc)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield from _queue_families(queues, counters)
        by_state = GaugeMetricFamily("relier_workers", "Registered workers by state.",
                                     labels=["state"])
        states: dict[str, int] = {"alive": 0, "stopping": 0, "dead": 0}
        for w in workers:
            states[w.state] = states.get(w.state, 0) + 1
        for state, count in sorted(states.items()):
            by_state.add_metric([state], count)
        yield by_state


def _queue_families(
    queues: list[inspect.QueueStats], counters: dict[str, dict[str, int]]
) -> Iterable[Metric]:
    def gauge(name: str, doc: str, extra: list[str] | None = None) -> GaugeMetricFamily:
        return GaugeMetricFamily(name, doc, labels=["queue", *(extra or [])])

    depth = gauge("relier_queue_depth", "Messages waiting in the queue (all priorities).")
    oldest = gauge("relier_queue_oldest_age_seconds",
                   "Age of the next message to run (0 when empty or unknown).")
    delayed = gauge("relier_queue_delayed", "Messages waiting for their time (eta, retry).")
    flight = gauge("relier_queue_in_flight", "Messages workers hold (processing lists).")
    dlq = gauge("relier_dlq_size", "DLQ entries by reason.", ["reason"])
    fetched = CounterMetricFamily("relier_queue_fetched", "Messages taken by workers.",
                                  labels=["queue"])
    rejected = CounterMetricFamily("relier_admission_rejections",
                                   "Pushes refused by admission control.", labels=["queue"])
    hits = CounterMetricFamily("relier_idempotent_hits",
                               "Duplicate dispatches answered from the idempotency record.",
                               labels=["queue"])
    for q in queues:
        depth.add_metric([q.name], q.depth)
        oldest.add_metric([q.name], q.oldest_age or 0.0)
        delayed.add_metric([q.name], q.delayed)
        flight.add_metric([q.name], q.in_flight)
        for reason, count in sorted(q.dlq_reasons.items()):
            dlq.add_metric([q.name, reason], count)
        stats = counters.get(q.name, {})
        fetched.add_metric([q.name], stats.get("fetched", 0))
        rejected.add_metric([q.name], stats.get("rejected", 0))
        hits.add_metric([q.name], stats.get("idempotent_hits", 0))
    return [depth, oldest, delayed, flight, dlq, fetched, rejected, hits]


def multiprocess_child() -> bool:
    """True in a worker started by the supervisor (its metrics go to shared files)."""
    return bool(os.environ.get(MULTIPROC_ENV)) and bool(os.environ.get(SUPERVISED_METRICS_ENV))


def supervisor_registry(
    client_factory: Callable[[], redis.Redis], directory: str
) -> CollectorRegistry:
    """The supervisor's registry: every child's metrics merged, plus the queue metrics."""
    from prometheus_client import multiprocess

    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=directory)  # type: ignore[no-untyped-call]
    registry.register(QueueCollector(client_factory))
    return registry


class MetricsServer:
    """The ``/metrics`` endpoint: a daemon thread serving one registry."""

    def __init__(self, registry: CollectorRegistry, host: str, port: int) -> None:
        try:
            self._server, self._thread = start_http_server(port, addr=host, registry=registry)
        except OSError as exc:
            raise ConfigurationError(
                f"cannot serve metrics on {host}:{port} ({exc.strerror or exc}); choose "
                f"another metrics_port, or 0 to turn metrics off") from None
        self.port: int = self._server.server_port
        log.info("metrics on http://%s:%d/metrics", host, self.port)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)
