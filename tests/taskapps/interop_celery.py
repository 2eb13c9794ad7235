"""Celery side of the interop tests.

A real Celery worker runs this module's ``app``:
``celery -A tests.taskapps.interop_celery worker -P solo -Q <queue> ...`` with the Redis
URL in ``INTEROP_REDIS_URL``. Broker and result backend share that URL, because Relier
keeps results in the broker's database.

The test process only uses :func:`make_app`, to build short-lived producer apps.
"""

from __future__ import annotations

import os
from typing import Any

from celery import Celery, Task

#: Environment variable holding the Redis URL for the worker's app.
URL_ENV = "INTEROP_REDIS_URL"


def make_app(url: str, main: str = "interop_celery") -> Celery:
    """A Celery app whose broker and result backend are both ``url``."""
    app = Celery(main, broker=url, backend=url, set_as_current=False)
    app.conf.update(
        broker_connection_retry_on_startup=True,
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        worker_hijack_root_logger=True,
        worker_redirect_stdouts=False,
    )
    return app


app = make_app(os.environ.get(URL_ENV, "redis://127.0.0.1:6379/0"))


class InteropError(Exception):
    """A non-builtin exception, so a Relier reader sees a module other than builtins."""


@app.task(name="interop.celery_mul")
def mul(x: int, y: int, z: int = 1) -> int:
    return x * y * z


@app.task(name="interop.celery_fail")
def fail(message: str) -> int:
    raise ValueError(message, 7)


@app.task(name="interop.celery_custom_fail")
def custom_fail(message: str) -> int:
    raise InteropError(message)


@app.task(name="interop.celery_echo", bind=True)
def echo(self: Task, payload: dict[str, Any]) -> dict[str, Any]:
    """What the Celery worker understood of a Relier message."""
    request = self.request
    return {
        "payload": payload,
        "id": request.id,
        "task": request.task,
        "retries": request.retries,
        "root_id": request.root_id,
        "routing_key": (request.delivery_info or {}).get("routing_key"),
    }


@app.task(name="interop.celery_tsum")
def tsum(values: list[int]) -> int:
    return sum(values)
