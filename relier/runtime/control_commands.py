"""The remote-control commands a Relier worker answers, each shaped as a Celery worker
shapes its reply (celery/worker/control.py), so ``celery inspect``, ``app.control`` and
Flower read them unchanged.

``reserved`` and ``scheduled`` are always empty: a Relier worker holds no message in
memory that it is not running (an eta waits in the queue's delayed set in Redis, shown
by ``relier inspect``).
"""

from __future__ import annotations

import logging
import os
import resource
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import urlsplit

from relier.app import App
from relier.protocol import pidbox
from relier.runtime.capacity import Capacity
from relier.runtime.hooks import ActiveRun, RunningTable
from relier.runtime.revoked import RevokedIds, Terminations
from relier.settings import redact
from relier.store import control as control_store
from relier.store.broker import Broker

log = logging.getLogger("relier.control")

#: The reply of a command that answers nothing (a broadcast Celery sends without
#: waiting, such as ``heartbeat``).
NO_REPLY: Final = object()

#: At most this many revoked ids are sent to a Celery worker's mingle (Celery keeps 50 000).
MAX_SHARED_REVOKED: Final = 50_000

Handler = Callable[[dict[str, Any]], Awaitable[Any]]


@dataclass
class WorkerFacts:
    """What the commands read about the worker they answer for."""

    app: App
    broker: Broker
    hostname: str
    queues: list[str]
    capacity: Capacity
    recorder: RunningTable
    revoked: RevokedIds
    terminations: Terminations
    started: float = field(default_factory=time.monotonic)
    clock: int = 0
    #: Whether a refused ``enable_events`` was logged already (once is enough).
    events_refused: bool = False


def _request_info(task: ActiveRun, facts: WorkerFacts) -> dict[str, Any]:
    """One task as Celery's ``Request.info(safe=True)`` (arguments as their repr)."""
    return {
        "id": task.task_id, "name": task.name, "args": task.argsrepr,
        "kwargs": task.kwargsrepr, "type": task.name, "hostname": facts.hostname,
        "time_start": task.started_at, "acknowledged": False,
        "delivery_info": {"exchange": "", "routing_key": task.queue, "priority": None,
                          "redelivered": task.redelivered},
        "worker_pid": os.getpid(),
    }


def _queue_info(name: str) -> dict[str, Any]:
    """One consumed queue as kombu's ``Queue.as_dict(recurse=True)``."""
    exchange = {"name": name, "type": "direct", "arguments": None, "durable": True,
                "passive": False, "auto_delete": False, "delivery_mode": None,
                "no_declare": False}
    return {"name": name, "exchange": exchange, "routing_key": name,
            "queue_arguments": None, "binding_arguments": None, "consumer_arguments": None,
            "durable": True, "exclusive": False, "auto_delete": False, "no_ack": False,
            "alias": None, "bindings": [], "no_declare": None, "expires": None,
            "message_ttl": None, "max_length": None, "max_length_bytes": None,
            "max_priority": None}


def _rusage() -> dict[str, float]:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return {name: getattr(usage, f"ru_{name}") for name in (
        "utime", "stime", "maxrss", "ixrss", "idrss", "isrss", "minflt", "majflt", "nswap",
        "inblock", "oublock", "msgsnd", "msgrcv", "nsignals", "nvcsw", "nivcsw")}


def _broker_info(url: str) -> dict[str, Any]:
    parts = urlsplit(url)
    return {"hostname": parts.hostname, "userid": parts.username, "port": parts.port,
            "virtual_host": parts.path.lstrip("/") or "0", "transport": "redis",
            "ssl": parts.scheme == "rediss", "insist": False, "connect_timeout": 4,
            "transport_options": {}, "login_method": None, "uri_prefix": None,
            "heartbeat": 120.0, "failover_strategy": "round-robin", "alternates": []}


def stats(facts: WorkerFacts) -> dict[str, Any]:
    """``inspect stats``: the fields Flower's worker page reads."""
    limit = facts.capacity.limit
    return {
        "total": dict(facts.recorder.totals), "pid": os.getpid(), "clock": str(facts.clock),
        "uptime": int(time.monotonic() - facts.started), "prefetch_count": limit,
        "pool": {"implementation": "relier:asyncio", "max-concurrency": limit,
                 "processes": [os.getpid()], "max-tasks-per-child": "N/A",
                 "put-guarded-by-semaphore": False, "timeouts": [0, 0]},
        "broker": _broker_info(facts.app.settings.redis_url),
        "rusage": _rusage(),
    }


def _task_ids(arguments: dict[str, Any]) -> list[str]:
    """``task_id`` as Celery sends it: one id or a list of them (anything else: none)."""
    value = arguments.get("task_id")
    values = value if isinstance(value, list) else [value]
    return [v for v in values if isinstance(v, str) and v]


async def revoke(facts: WorkerFacts, arguments: dict[str, Any]) -> Any:
    """Remember the ids in Redis (REVOKED for those not started), and with ``terminate``
    stop the ones running here. The reply is Celery's."""
    ids = _task_ids(arguments)
    if not ids:
        return pidbox.error("revoke: no task_id given")
    terminate = arguments.get("terminate") is True
    settings = facts.app.settings
    running_here = frozenset(ids) & {t.task_id for t in facts.recorder.active()}
    await control_store.revoke(facts.broker.client, control_store.Revocation(
        ids, settings.revoke_ttl, settings.result_ttl, keep_result=running_here))
    facts.revoked.add(ids)
    if not terminate:
        return pidbox.ok(f"tasks {set(ids)} flagged as revoked")
    stopped = facts.terminations.terminate(ids)
    return pidbox.ok("terminate: " + (", ".join(stopped) if stopped else "tasks unknown"))


def query_task(facts: WorkerFacts, arguments: dict[str, Any]) -> dict[str, Any]:
    ids = arguments.get("ids")
    wanted = set(ids if isinstance(ids, list) else [ids])
    return {t.task_id: ["active", _request_info(t, facts)]
            for t in facts.recorder.active() if t.task_id in wanted}


def events_switch(facts: WorkerFacts) -> dict[str, str]:
    """``enable_events`` (Flower sends it every few seconds): events are chosen at start."""
    if facts.app.settings.events:
        return pidbox.ok("task events already enabled")
    if not facts.events_refused:
        facts.events_refused = True
        log.warning("remote control: enable_events asked for, but task events are off; "
                    "start the worker with --events (logged once)")
    return pidbox.error("relier cannot switch task events on at run time: start the "
                        "worker with --events")


def conf(facts: WorkerFacts) -> dict[str, Any]:
    """``inspect conf``: Relier's settings (the URL's password hidden)."""
    settings = facts.app.settings
    shown = {name: getattr(settings, name) for name in settings.__dataclass_fields__}
    shown["redis_url"] = redact(settings.redis_url)
    return {k: v if isinstance(v, str | int | float | bool | dict) else repr(v)
            for k, v in shown.items()}


def handlers(facts: WorkerFacts) -> dict[str, Handler]:
    """Command name -> its handler (an awaitable taking the request's arguments)."""

    def answer(build: Callable[[dict[str, Any]], Any]) -> Handler:
        async def handle(arguments: dict[str, Any]) -> Any:
            return build(arguments)

        return handle

    return {
        "ping": answer(lambda _: pidbox.ok("pong")),
        "active": answer(lambda _: [_request_info(t, facts) for t in facts.recorder.active()]),
        "reserved": answer(lambda _: []),
        "scheduled": answer(lambda _: []),
        "registered": answer(lambda _: sorted(facts.app.tasks)),
        "stats": answer(lambda _: stats(facts)),
        "active_queues": answer(lambda _: [_queue_info(q) for q in facts.queues]),
        "revoked": answer(lambda _: list(facts.revoked)[-MAX_SHARED_REVOKED:]),
        "query_task": answer(lambda a: query_task(facts, a)),
        "conf": answer(lambda _: conf(facts)),
        "clock": answer(lambda _: {"clock": facts.clock}),
        # A Celery worker starting with mingle asks its peers for their revoked ids (oldest
        # first) and clock: it learns Relier's. (Its own ids are not copied into Redis.)
        "hello": answer(lambda _: {"revoked": list(facts.revoked)[-MAX_SHARED_REVOKED:],
                                   "clock": facts.clock}),
        "enable_events": answer(lambda _: events_switch(facts)),
        # Gossip from Celery workers; Relier keeps no peer table, and no reply is awaited.
        "heartbeat": answer(lambda _: NO_REPLY),
        "revoke": lambda a: revoke(facts, a),
    }
