"""Settings: one name each, an ``App(...)`` keyword and an environment variable.

``App(result_ttl=60)`` and ``RELIER_RESULT_TTL=60`` set the same thing; a keyword wins
over the environment. Settings are read once, when an App first needs them, and are
frozen after that.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any, Final, get_type_hints

from relier.errors import ConfigurationError

# Where URLs are shown redacted is the store's business; re-exported for older imports.
from relier.store.connections import redact as redact

ENV_PREFIX: Final = "RELIER_"


def _parse_queue_limits(text: str) -> dict[str, int]:
    """``high_priority=10000,default=50000`` -> ``{"high_priority": 10000, ...}``."""
    limits: dict[str, int] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, sep, value = item.partition("=")
        if not sep or not name.strip() or not value.strip().isdigit():
            raise ConfigurationError(
                f"RELIER_QUEUE_LIMITS: expected queue=limit pairs, got {item!r}"
            )
        limits[name.strip()] = int(value)
    return limits


@dataclass(frozen=True, slots=True)
class Settings:
    """Every knob, with the default a production deployment starts from."""

    #: Broker and result store. ``rediss://`` for TLS; passwords and ACL users in the URL;
    #: ``redis+sentinel://HOST:PORT[,HOST:PORT...]/SERVICE[/DB]`` for Sentinel;
    #: ``redis+cluster://HOST:PORT[,HOST:PORT...]`` for a Redis Cluster (queue names then
    #: carry a hash tag, ``{emails}``: see docs/scaling.md).
    redis_url: str = "redis://localhost:6379/0"
    #: Depth limits per queue, enforced when a task is pushed: a push that would take a
    #: queue's waiting messages (ready and delayed) past its limit raises
    #: ``AdmissionRejectedError``. A task's ``max_queue_depth`` takes precedence.
    queue_limits: dict[str, int] = field(default_factory=dict)
    #: Refuse pushes once Redis uses this fraction of its ``maxmemory`` (0 turns the guard
    #: off; without a ``maxmemory`` there is nothing to guard), so that a flood is refused
    #: here rather than evicted or refused by Redis.
    broker_memory_limit: float = 0.95
    #: Replicas that must confirm a push before ``push``/``apush`` return (Redis's
    #: ``WAIT``, sent after the enqueue on the same connection); fewer within
    #: ``replica_ack_timeout`` raise ``ReplicationTimeout``. 0 (the default) does not wait:
    #: replication is asynchronous and a failover can lose the last pushes (see the
    #: Scaling guide). Not supported on a Redis Cluster.
    replica_acks: int = 0
    #: Seconds a push waits for ``replica_acks`` replicas.
    replica_ack_timeout: float = 1.0
    #: Seconds between a worker's heartbeats.
    heartbeat_interval: float = 2.0
    #: Seconds after the last heartbeat that a worker counts as dead.
    heartbeat_ttl: float = 6.0
    #: A task resurrected this many times is quarantined as poison.
    max_resurrections: int = 3
    #: Seconds a stored result is kept.
    result_ttl: int = 86400
    #: Seconds an idempotent task's record (and cached result) is kept.
    idempotency_ttl: int = 86400
    #: Seconds in-flight tasks get to finish after SIGTERM before they are requeued.
    shutdown_grace: float = 30.0
    #: Port of the worker's Prometheus endpoint; 0 turns it off.
    metrics_port: int = 0
    #: Address the Prometheus endpoint binds to (``0.0.0.0`` to expose it beyond the host).
    metrics_host: str = "127.0.0.1"
    #: Publish Celery's worker and task events (what Flower shows); off by default.
    events: bool = False
    #: OpenTelemetry spans for pushes and runs, with the trace context in message headers
    #: (only with ``relier[otel]`` installed; off costs nothing).
    tracing: bool = True
    #: Seconds between moves of due delayed messages into their queues.
    pump_interval: float = 0.2
    #: Seconds between a worker's checks for messages it holds but never ran (a fetch whose
    #: reply was lost); such a message is given back after two checks. 0 turns it off.
    orphan_check_interval: float = 30.0
    #: Seconds an unknown task or a too-new version is deferred before it is dead-lettered.
    defer_window: float = 600.0
    #: Sync tasks abandoned at their hard timeout (their thread cannot be stopped) that
    #: may still be running before the worker drains and exits to be restarted clean.
    max_abandoned_threads: int = 10
    #: Seconds the event loop may go without turning before the watchdog logs the stack
    #: of the task blocking it.
    loop_stall_warn: float = 5.0
    #: Seconds of a stalled loop after which the watchdog ends the process, so that
    #: Phoenix moves its tasks elsewhere; 0 never ends it.
    loop_stall_kill: float = 60.0
    #: Largest message, in bytes as it sits on the list (the base64 body is about 4/3 of
    #: the JSON arguments). Producers refuse bigger ones; workers dead-letter them unread.
    max_message_bytes: int = 8 * 1024 * 1024
    #: Celery's ``result_extended``: results also carry the task's ``name``, ``args``,
    #: ``kwargs``, ``worker``, ``retries`` and ``queue`` (Celery's ``AsyncResult`` reads them).
    result_extended: bool = False
    #: Seconds a revoked task id is remembered in Redis (Celery keeps its own for 3 hours,
    #: in worker memory); a message of that id fetched within it is not run.
    revoke_ttl: int = 10800
    #: Seconds between a worker's re-reads of the revoked ids (broadcasts reach it at once;
    #: this catches one it missed).
    revoke_poll_interval: float = 1.0
    #: Whether this worker may lead the periodic schedules (one worker leads at a time;
    #: ``relier worker --no-schedule`` turns it off). It declares its schedules either way.
    schedule: bool = True
    #: Seconds of the schedule leader's lease: a leader that dies is replaced within this.
    schedule_lease: float = 10.0

    @classmethod
    def load(
        cls, overrides: Mapping[str, Any] | None = None, environ: Mapping[str, str] | None = None
    ) -> Settings:
        """Defaults, then ``RELIER_*`` variables, then explicit keywords."""
        environ = os.environ if environ is None else environ
        overrides = dict(overrides or {})
        known = {f.name for f in fields(cls)}
        unknown = set(overrides) - known
        if unknown:
            from relier.options import did_you_mean

            raise ConfigurationError("unknown setting(s): " + ", ".join(
                f"{name}{did_you_mean(name, known)}" for name in sorted(unknown)))
        hints = get_type_hints(cls)
        values: dict[str, Any] = {}
        for name in known:
            env_name = ENV_PREFIX + name.upper()
            if name in overrides and overrides[name] is not None:
                values[name] = overrides[name]
            elif env_name in environ:
                values[name] = _from_text(name, hints[name], environ[env_name])
        settings = cls(**values)
        from relier.config_errors import check_url  # imports redact from here

        check_url(settings.redis_url)
        return settings

    def replace(self, **changes: Any) -> Settings:
        return dataclasses.replace(self, **changes)


def _from_text(name: str, kind: Any, text: str) -> Any:
    env_name = ENV_PREFIX + name.upper()
    try:
        if kind is bool:
            return _parse_bool(text)
        if kind is int:
            return int(text)
        if kind is float:
            return float(text)
        if name == "queue_limits":
            return _parse_queue_limits(text)
        return text
    except ValueError as exc:
        raise ConfigurationError(f"{env_name}={text!r}: {exc}") from exc


def _parse_bool(text: str) -> bool:
    value = text.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off", ""):
        return False
    raise ValueError("expected 1/0, true/false, yes/no or on/off")
