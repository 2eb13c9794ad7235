"""Relier: an asyncio task runtime that speaks Celery's protocol on Redis."""

from relier.app import App
from relier.context import TaskContext, current_task
from relier.errors import (
    AdmissionRejectedError,
    ArgumentError,
    BrokerUnavailable,
    ConfigurationError,
    LockLost,
    LockTimeout,
    PayloadError,
    RelierError,
    ReplicationTimeout,
    ResultTimeout,
    Retry,
    TaskFailed,
)
from relier.handle import TaskHandle
from relier.lock import Lock
from relier.schedules import ScheduleSpec, cron, every
from relier.task import Task
from relier.workflow import GroupHandle, Signature, chain, chord, group

__all__ = [
    "AdmissionRejectedError",
    "App",
    "ArgumentError",
    "BrokerUnavailable",
    "ConfigurationError",
    "GroupHandle",
    "Lock",
    "LockLost",
    "LockTimeout",
    "PayloadError",
    "RelierError",
    "ReplicationTimeout",
    "ResultTimeout",
    "Retry",
    "ScheduleSpec",
    "Signature",
    "Task",
    "TaskContext",
    "TaskFailed",
    "TaskHandle",
    "chain",
    "chord",
    "cron",
    "current_task",
    "every",
    "group",
]
