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
    ResultTimeout,
    Retry,
    TaskFailed,
)
from relier.handle import TaskHandle
from relier.lock import Lock
from relier.schedules import ScheduleSpec, cron, every
from relier.task import Task

__all__ = [
    "AdmissionRejectedError",
    "App",
    "ArgumentError",
    "BrokerUnavailable",
    "ConfigurationError",
    "Lock",
    "LockLost",
    "LockTimeout",
    "PayloadError",
    "RelierError",
    "ResultTimeout",
    "Retry",
    "ScheduleSpec",
    "Task",
    "TaskContext",
    "TaskFailed",
    "TaskHandle",
    "cron",
    "current_task",
    "every",
]
