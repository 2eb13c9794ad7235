"""The worker's lifecycle: start, run, and stop without losing anything.

One task group owns everything the worker runs (the executors through :class:`Runs`):

* services that outlive the tasks: the settler (acks and results), the pump (due
  messages), the signal watcher, the watchdog's tick, remote control (Celery's pidbox)
  and the re-reading of revoked ids;
* the executors, one per running task, spawned by the fetcher (as plain asyncio tasks
  with a cancel scope each, cheaper to start than a task group's: runs.py).

Two threads watch from outside the loop: the heartbeat, and the watchdog, which ends
the process (exit code 70) when the loop stays blocked past ``loop_stall_kill``. When
more than ``max_abandoned_threads`` sync tasks outlive their hard timeout, the worker
stops as on SIGTERM and exits with code 75 so that its supervisor restarts it clean.

Stopping (SIGTERM or SIGINT) happens in order: stop fetching at once; give running
tasks ``shutdown_grace`` seconds (a second signal ends the grace now); cancel what is
left; give every message still in this worker's processing lists back to the head of
its queue; stop the services. A task cut short by shutdown is not counted as an attempt.
"""

from __future__ import annotations

import logging
import os
import secrets
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Sequence
from functools import partial
from typing import Final

import anyio

from relier.app import App
from relier.config_errors import explain
from relier.errors import ConfigurationError
from relier.protocol.queues import DEFAULT_QUEUES, REQUEUE_QUEUE, SUSPECT_QUEUE
from relier.protocol.registry import WorkerInfo
from relier.runtime.abandoned import EXIT_RECYCLE
from relier.runtime.abandoned import check_limit as check_abandoned_limit
from relier.runtime.beat import Beat
from relier.runtime.capacity import Capacity
from relier.runtime.control import ControlService
from relier.runtime.control_commands import WorkerFacts
from relier.runtime.delivery import Delivery, Settler
from relier.runtime.executor import SETTLE_TIMEOUT_S, Executor
from relier.runtime.fetcher import Fetcher
from relier.runtime.heartbeat import Heartbeat
from relier.runtime.hooks import TelemetryFactory, WorkerTelemetry
from relier.runtime.phoenix import Resurrector
from relier.runtime.progress import hostname
from relier.runtime.runs import Runs
from relier.runtime.scheduler import Scheduler
from relier.runtime.watchdog import EXIT_LOOP_STALLED, Watchdog
from relier.store import cluster, connections, server
from relier.store import registry as registry_store
from relier.store.broker import REDIS_ERRORS, Broker, call_sync
from relier.store.cluster import is_cluster
from relier.store.errors import StoreError
from relier.store.errors import StoreError as RedisError

log = logging.getLogger("relier.worker")
#: Relier's own lanes: on a cluster they keep one list each (store.keys.queue_lists).
LANES = (REQUEUE_QUEUE, SUSPECT_QUEUE)

#: Seconds cancelled tasks get to end before the worker gives their messages back and exits
#: (longer than a shielded settle may take, so that one still in flight can land).
CANCEL_BOUND_S: Final = SETTLE_TIMEOUT_S + 1.0
#: Exit code after that: some task would not stop.
EXIT_STUCK: Final = 71
#: The same signal again this soon is the same stop request, not "hurry up".
REPEAT_SIGNAL_S: Final = 0.5

#: Threads for plain ``def`` tasks, at most (they also count against concurrency).
MAX_THREADS = 64


def new_worker_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"


class Worker:
    """Consumes ``queues`` with up to ``concurrency`` tasks at once."""

    def __init__(
        self,
        app: App,
        queues: Sequence[str] = DEFAULT_QUEUES,
        concurrency: int = 100,
        worker_id: str | None = None,
        *,
        telemetry: TelemetryFactory,
        in_process: bool = False,
    ) -> None:
        """``telemetry``: what the worker reports to (metrics, events, recorder, tracer;
        ``relier.observability.telemetry.Telemetry``). ``in_process``: a worker inside
        someone else's process (``relier.testing``), which must never end that process:
        no watchdog kill, no ``os._exit``."""
        if not queues:
            raise ConfigurationError("a worker needs at least one queue")
        self.app = app
        self.queues = list(dict.fromkeys(queues))
        #: Every queue whose processing list this worker may hold messages in: its own and
        #: the suspect lane (what Phoenix recovers and a graceful stop gives back).
        self.held_queues = list(dict.fromkeys([*self.queues, SUSPECT_QUEUE]))
        if cluster.is_cluster_url(app.settings.redis_url):
            cluster.require_tags([q for q in self.queues if q not in LANES])
        self.id = worker_id or new_worker_id()
        self.capacity = Capacity(concurrency)
        self._telemetry = telemetry
        settings = app.settings
        self._in_process = in_process
        self._watchdog = Watchdog(settings.loop_stall_warn,
                                  0.0 if in_process else settings.loop_stall_kill)
        check_abandoned_limit(settings.max_abandoned_threads)  # fail before connecting
        #: The process's exit code once :meth:`run` returns: 0, or :data:`EXIT_RECYCLE`
        #: when abandoned threads piled up (restart the worker).
        self.exit_code = 0
        self._stopping = False
        self._fetch_scope: anyio.CancelScope | None = None
        self._grace_scope: anyio.CancelScope | None = None

    async def run(self, *, handle_signals: bool = True) -> None:
        """Run until stopped by a signal (or :meth:`stop`); returns after a clean stop."""
        settings = self.app.settings
        broker = Broker(self.app.async_client())
        heartbeat: Heartbeat | None = None
        telemetry: WorkerTelemetry | None = None
        clean = False
        try:
            await self._connect(broker)
            telemetry = self._telemetry(self.app, self.id, lambda: self.capacity.in_use)
            heartbeat = await self._register(telemetry)
            self._watchdog.start(on_kill=partial(_end_stalled, heartbeat))
            settler = Settler(broker)
            executor = Executor(self.app, self.id, self.capacity,
                                min(self.capacity.limit, MAX_THREADS), self._recycle,
                                telemetry.recorder, tracer=telemetry.tracer)
            telemetry.follow(executor.caller, self._watchdog)
            # Revoked ids are known before the first fetch (a task revoked while queued).
            await executor.revoked.refresh(broker.client)
            control = self._control(broker, executor, telemetry)
            async with anyio.create_task_group() as services:
                services.start_soon(self._watchdog.tick, name="relier watchdog tick")
                services.start_soon(settler.run, name="relier settler")
                services.start_soon(Resurrector(broker, self.id, settings, telemetry.metrics).run,
                                    name="relier resurrector")
                services.start_soon(telemetry.run, name="relier telemetry")
                services.start_soon(control.run, name="relier remote control")
                services.start_soon(executor.revoked.follow, broker.client,
                                    settings.revoke_poll_interval, name="relier revoked ids")
                beat = Beat(self.app, broker, self.id, started_at=time.time(),
                            metrics=telemetry.metrics)
                services.start_soon(beat.run, name="relier beat")
                if handle_signals:
                    services.start_soon(self._watch_signals, name="relier signals")
                async with Runs() as executors:
                    fetcher = Fetcher(broker, settler, self.queues, self.id, self.capacity,
                                      self._spawner(executors, executor),
                                      settings.orphan_check_interval, self.app)
                    scheduler = Scheduler(broker, self.queues, settings.pump_interval,
                                          fetcher.wake, held=self.held_queues)
                    services.start_soon(scheduler.run, name="relier pump")
                    log.info("worker %s consuming %s with concurrency %d",
                             self.id, ",".join(self.queues), self.capacity.limit)
                    await self._fetch_until_stopped(fetcher)
                    beat.stop()
                    heartbeat.mark_stopping()
                    await self._drain(settings.shutdown_grace)
                    # A task that swallows its cancellation would hold the task group open
                    # for ever; past a bound, a thread gives everything back and exits.
                    last_resort = threading.Timer(
                        CANCEL_BOUND_S, self._give_back_and_exit, args=(heartbeat,))
                    last_resort.daemon = True
                    last_resort.start()
                    executors.cancel()
                last_resort.cancel()
                gave_back = await self._give_back(broker)
                services.cancel_scope.cancel()
            # Phoenix only recovers registered workers: stay registered (and expire) unless
            # everything held was given back.
            clean = gave_back
        finally:
            self._watchdog.stop()
            with anyio.CancelScope(shield=True):
                if heartbeat is not None:
                    # After an unclean exit the entry stays, so Phoenix recovers what we held.
                    await anyio.to_thread.run_sync(lambda: heartbeat.stop(deregister=clean))
                if telemetry is not None:
                    await telemetry.aclose()
                await broker.aclose()
        log.info("worker %s stopped", self.id)

    def _control(self, broker: Broker, executor: Executor,
                 telemetry: WorkerTelemetry) -> ControlService:
        """Remote control (pidbox) for this worker, on a connection of its own."""
        facts = WorkerFacts(app=self.app, broker=broker, hostname=hostname(self.id),
                            queues=self.queues, capacity=self.capacity,
                            recorder=telemetry.recorder, revoked=executor.revoked,
                            terminations=executor.terminations)
        return ControlService(self.app.async_client(), facts)

    def stop(self) -> None:
        """Begin a graceful stop (as SIGTERM does); a second call ends the grace period."""
        if self._stopping:
            if self._grace_scope is not None:
                self._grace_scope.cancel()
            return
        self._stopping = True
        if self._fetch_scope is not None:
            self._fetch_scope.cancel()

    def _recycle(self, abandoned_running: int) -> None:
        """Too many abandoned threads: drain and exit so that a supervisor restarts us."""
        if self.exit_code:
            return
        log.error("%d abandoned sync-task thread(s) still running (max_abandoned_threads=%d): "
                  "draining, then exiting with code %d so that a supervisor starts this "
                  "worker afresh", abandoned_running, self.app.settings.max_abandoned_threads,
                  EXIT_RECYCLE)
        self.exit_code = EXIT_RECYCLE
        self.stop()

    async def _connect(self, broker: Broker) -> None:
        try:
            await server.ping(broker.client)
            await broker.load_scripts()
            await registry_store.announce_queues(broker.client, self.held_queues)
        except (*REDIS_ERRORS, RedisError) as exc:
            raise explain(self.app.settings.redis_url, exc) or exc from None

    async def _register(self, telemetry: WorkerTelemetry) -> Heartbeat:
        """Announce the queues, enter the registry and start beating."""
        settings = self.app.settings
        now = time.time()
        info = WorkerInfo(
            id=self.id, host=socket.gethostname(), pid=os.getpid(), queues=self.held_queues,
            concurrency=self.capacity.limit, started_at=now, last_heartbeat=now,
            tasks={name: task.version for name, task in self.app.tasks.items()},
        )
        client = connections.sync_client(settings.redis_url, socket_timeout=5,
                                      socket_connect_timeout=5)
        heartbeat = Heartbeat(client, info, settings.heartbeat_interval,
                              settings.heartbeat_ttl, lambda: self.capacity.in_use,
                              telemetry.recorder.running, telemetry.recorder.changed)
        await anyio.to_thread.run_sync(heartbeat.start)
        return heartbeat

    @staticmethod
    def _spawner(executors: Runs, executor: Executor) -> Callable[[Delivery], None]:
        def spawn(delivery: Delivery) -> None:
            executors.start(executor.execute(delivery), name="relier task")

        return spawn

    async def _fetch_until_stopped(self, fetcher: Fetcher) -> None:
        with anyio.CancelScope() as scope:
            self._fetch_scope = scope
            if self._stopping:
                scope.cancel()
            await fetcher.run()

    async def _drain(self, grace_s: float) -> None:
        if self.capacity.in_use:
            log.info("stopping: waiting up to %.0fs for %d running task(s)",
                     grace_s, self.capacity.in_use)
        with anyio.move_on_after(grace_s) as scope:
            self._grace_scope = scope
            await self.capacity.wait_idle()
        if self.capacity.in_use:
            log.warning("grace period over: cancelling %d task(s); they go back to their queues",
                        self.capacity.in_use)

    async def _give_back(self, broker: Broker) -> bool:
        """Return everything still held to the head of its queue (nothing waits for Phoenix).

        False when some queue could not be given back; Phoenix recovers it then."""
        returned: set[str] = set()
        with anyio.move_on_after(10, shield=True):
            for queue in self.held_queues:
                try:
                    moved = await broker.requeue_all(queue, self.id)
                except REDIS_ERRORS as exc:
                    log.error("could not give back %r messages (%s); Phoenix will", queue, exc)
                    continue
                returned.add(queue)
                if moved:
                    log.info("gave %d unfinished message(s) back to %r", moved, queue)
        if len(returned) < len(self.held_queues):
            log.error("leaving this worker registered so that Phoenix recovers what it held")
            return False
        return True

    def _give_back_and_exit(self, heartbeat: Heartbeat | None) -> None:
        """From a thread, when cancelled tasks will not end: give back what this worker
        holds (a late settle of the stuck run then finds its message gone and writes
        nothing), deregister, exit."""
        log.error("running tasks ignored their cancellation for %.0fs: giving their messages "
                  "back and exiting", CANCEL_BOUND_S)
        client = connections.sync_client(self.app.settings.redis_url, socket_timeout=5,
                                      socket_connect_timeout=5)
        try:
            for queue in self.held_queues:
                call_sync(client, Broker.requeue_call(queue, self.id,
                                                      cluster=is_cluster(client)))
            if heartbeat is not None:
                heartbeat.stop(deregister=True)
        except StoreError as exc:
            log.error("could not give them back (%s); Phoenix will", exc)
        if self._in_process:
            return  # not our process to end; whoever runs us sees run() not return
        _flush_logs()
        os._exit(EXIT_STUCK)

    async def _watch_signals(self) -> None:
        last: tuple[int, float] | None = None
        with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
            async for signum in signals:
                name = signal.Signals(signum).name
                now = time.monotonic()
                if last is not None and last[0] == signum and now - last[1] < REPEAT_SIGNAL_S:
                    # The same signal twice for one stop (systemd signals every process of
                    # the group, and a supervisor forwards its own copy): not "hurry up".
                    continue
                last = (signum, now)
                if self._stopping:
                    log.warning("%s again: ending the grace period now", name)
                else:
                    again = "press Ctrl-C" if signum == signal.SIGINT else "send SIGTERM"
                    log.info("%s: stopping (no new tasks) within %.0fs; %s again to stop "
                             "now", name, self.app.settings.shutdown_grace, again)
                self.stop()


def _end_stalled(heartbeat: Heartbeat) -> None:
    """The watchdog's last act (from its thread): make Phoenix act now, then exit."""
    heartbeat.flatline()
    _flush_logs()
    os._exit(EXIT_LOOP_STALLED)


def _flush_logs() -> None:
    for handler in logging.getLogger("relier").handlers:
        handler.flush()
    sys.stdout.flush()
    sys.stderr.flush()


def end_process(exit_code: int, join_s: float = 1.0) -> None:
    """After :meth:`Worker.run`: exit with ``exit_code`` at once if it is not 0 or if a
    thread that cannot be stopped is still running (a sync task past its hard timeout or
    past the shutdown grace; Python would wait for it forever). Otherwise return."""
    deadline = time.monotonic() + join_s
    stuck = [t for t in threading.enumerate()
             if t is not threading.current_thread() and not t.daemon]
    for thread in stuck:
        thread.join(max(deadline - time.monotonic(), 0.0))
    running = [t for t in stuck if t.is_alive()]
    if exit_code == 0 and not running:
        return
    if running:
        log.warning("leaving %d thread(s) of sync tasks still running behind", len(running))
    _flush_logs()
    os._exit(exit_code)
