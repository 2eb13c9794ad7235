"""Shared fixtures: a private Redis server per session, a fresh database per test, and
worker subprocesses that are always reaped.

No test uses a server someone started by hand, and none fakes Redis.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import redis

from relier import App
from relier.embedded import EmbeddedServer
from tests.topologies import (  # noqa: F401 - fixtures, started only by tests that use them
    fresh_sentinel_setup,
    redis_cluster,
    sentinel_setup,
)

ROOT = Path(__file__).resolve().parent.parent
#: Databases on the session server; each test takes the next one, flushed.
DATABASES = 1000
_db_numbers = itertools.count(1)


#: Worker environment with short heartbeats: a kill -9 is noticed in about a second.
FAST = {"RELIER_HEARTBEAT_INTERVAL": "0.3", "RELIER_HEARTBEAT_TTL": "1.2"}


@pytest.fixture(scope="session")
def redis_server() -> Iterator[EmbeddedServer]:
    with EmbeddedServer(databases=DATABASES) as server:
        yield server


@pytest.fixture
def redis_url(redis_server: EmbeddedServer) -> str:
    """A URL to a database no other test in this session uses."""
    db = next(_db_numbers) % DATABASES
    url = redis_server.url_for(db)
    client = redis.Redis.from_url(url)
    client.flushdb()
    client.close()
    return url


@pytest.fixture
def rclient(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


@asynccontextmanager
async def pointed_at(redis_url: str, *apps: App) -> AsyncIterator[None]:
    """Point task Apps at this test's database; close their clients after."""
    for app in apps:
        app.configure(redis_url=redis_url)
    yield
    for app in apps:
        await app.aclose()
        app.close()


@pytest.fixture
async def basic_app(redis_url: str) -> AsyncIterator[None]:
    from tests.taskapps import basic

    async with pointed_at(redis_url, basic.app):
        yield


@pytest.fixture
async def control_app(redis_url: str) -> AsyncIterator[None]:
    from tests.taskapps import control

    async with pointed_at(redis_url, control.app):
        yield


@pytest.fixture
def celery_client(redis_url: str) -> Iterator[Any]:
    """A Celery app in this process, broker and backend on the test's database."""
    from tests.taskapps.interop_celery import make_app
    from tests.test_celery_interop import close_celery

    app = make_app(redis_url, main="relier_tests")
    yield app
    close_celery(app)


@pytest.fixture
def durable_server() -> Iterator[EmbeddedServer]:
    """A private server with the append-only file on, so a restart keeps the queues."""
    with EmbeddedServer(appendonly=True) as server:
        yield server


@pytest.fixture
async def timeouts_app(redis_url: str) -> AsyncIterator[None]:
    from tests.taskapps import timeouts

    async with pointed_at(redis_url, timeouts.app):
        yield


@pytest.fixture
async def observe_app(redis_url: str) -> AsyncIterator[None]:
    from tests.taskapps import observe

    async with pointed_at(redis_url, observe.app):
        yield


@pytest.fixture
async def payments_app(redis_url: str) -> AsyncIterator[None]:
    from tests.taskapps import payments

    async with pointed_at(redis_url, payments.app):
        yield


@pytest.fixture
async def rated_app(redis_url: str) -> AsyncIterator[None]:
    from tests.taskapps import ratelimited

    async with pointed_at(redis_url, ratelimited.app):
        yield


class WorkerProcess:
    """A `relier worker` subprocess whose output is collected as it runs."""

    def __init__(self, args: list[str], env: dict[str, str]) -> None:
        self.args = args
        self.process = subprocess.Popen(
            args, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.lines: list[str] = []
        self._changed = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for raw in self.process.stdout:
            with self._changed:
                self.lines.append(raw.decode(errors="replace").rstrip("\n"))
                self._changed.notify_all()
        with self._changed:
            self._changed.notify_all()

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def output(self) -> str:
        with self._changed:
            return "\n".join(self.lines)

    def wait_for_line(self, needle: str, timeout: float = 30.0) -> str:
        """Wait until a line containing ``needle`` is printed; returns that line."""
        deadline = time.monotonic() + timeout
        seen = 0
        with self._changed:
            while True:
                for line in self.lines[seen:]:
                    if needle in line:
                        return line
                seen = len(self.lines)
                remaining = deadline - time.monotonic()
                if remaining <= 0 or (self.process.poll() is not None and
                                      not self._reader.is_alive()):
                    raise AssertionError(f"no line with {needle!r} in:\n{self.output}")
                self._changed.wait(remaining)

    def signal(self, signum: int) -> None:
        self.process.send_signal(signum)

    def wait(self, timeout: float = 30.0) -> int:
        code = self.process.wait(timeout)
        self._reader.join(5)
        return code

    def kill(self) -> None:
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(10)
        self._reader.join(5)
        if self.process.stdout is not None:
            self.process.stdout.close()


StartWorker = Callable[..., WorkerProcess]


@pytest.fixture
def start_worker(redis_url: str) -> Iterator[StartWorker]:
    """Start `relier worker` subprocesses; each is killed at teardown if still running."""
    started: list[WorkerProcess] = []

    def start(
        app: str,
        *extra: str,
        queues: str | None = None,
        env: dict[str, str] | None = None,
        url: str | None = None,
        wait_ready: bool = True,
    ) -> WorkerProcess:
        args = [sys.executable, "-m", "relier", "worker", "-A", app,
                "--redis-url", url or redis_url, "--log-level", "debug", *extra]
        if queues:
            args += ["-Q", queues]
        environment = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
        worker = WorkerProcess(args, environment)
        started.append(worker)
        if wait_ready:
            worker.wait_for_line("consuming")
        return worker

    yield start
    for worker in started:
        worker.kill()
