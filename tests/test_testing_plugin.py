"""relier.testing: the opt-in pytest plugin and its in-process worker.

The plugin is tested as users meet it: pytest subprocesses on a bundled example
(examples/test_tasks.py) and on a small project with its own App and tasks that use
retries, hard timeouts, idempotency, the DLQ and rate limits. The harness itself also
gets direct tests against this suite's server.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from relier import App
from relier.testing import AsyncTestWorker, DrainTimeout, SyncTestWorker
from tests.conftest import pointed_at

ROOT = Path(__file__).resolve().parent.parent


def run_pytest(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("RELIER_APP", None)
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=180)


def test_the_bundled_user_tests_pass_with_the_plugin() -> None:
    done = run_pytest(ROOT, "-p", "relier.testing", "examples/test_tasks.py")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "4 passed" in done.stdout


SHOP_TASKS = '''
import asyncio
from relier import App, current_task

app = App()
runs: list[str] = []

@app.task(name="shop.flaky", retries=3, retry_backoff=0.05, retry_on=(ConnectionError,))
async def flaky(failures: int) -> int:
    attempt = current_task().attempt
    if attempt <= failures:
        raise ConnectionError(f"attempt {attempt}")
    return attempt

@app.task(name="shop.charge", idempotent=True)
async def charge(order: str) -> str:
    runs.append(order)
    return f"charged {order}"

@app.task(name="shop.hang", hard_timeout=0.5)
async def hang() -> None:
    await asyncio.sleep(60)

@app.task(name="shop.ping", queue="pings", rate_limit="5/s")
def ping(n: int) -> float:
    import time
    return time.time()
'''

SHOP_TESTS = '''
import pytest
from relier import App, TaskFailed
from relier.testing import AsyncTestWorker, SyncTestWorker
from shop import tasks

async def test_retries_until_it_succeeds(relier_worker: AsyncTestWorker) -> None:
    handle = await tasks.flaky.apush(2)
    await relier_worker.drain()
    assert await handle.aresult(timeout=5) == 3

async def test_idempotent_call_runs_once(relier_worker: AsyncTestWorker) -> None:
    first = await tasks.charge.apush("o-1")
    await relier_worker.drain()
    second = await tasks.charge.apush("o-1")
    await relier_worker.drain()
    assert second.id == first.id and await second.aresult(timeout=5) == "charged o-1"
    assert tasks.runs.count("o-1") == 1

def test_hard_timeout_dead_letters(relier_worker: SyncTestWorker) -> None:
    handle = tasks.hang.push()
    relier_worker.drain()
    with pytest.raises(TaskFailed):
        handle.result(timeout=5)
    [entry] = relier_worker.dead_letters(reason="hard_timeout")
    assert entry.task_id == handle.id

def test_rate_limit_spreads_the_runs(relier_worker: SyncTestWorker) -> None:
    handles = tasks.ping.push_many([((n,), {}) for n in range(10)])
    relier_worker.drain()
    started = sorted(h.result(timeout=5) for h in handles)
    assert started[-1] - started[0] >= 1.0  # 10 runs at 5/s take about 1.8 s

def test_the_app_is_this_projects_and_on_a_private_server(relier_app: App) -> None:
    assert relier_app is tasks.app
    assert "6379" not in relier_app.settings.redis_url
'''


def make_project(tmp_path: Path, ini: str) -> Path:
    (tmp_path / "shop").mkdir()
    (tmp_path / "shop" / "__init__.py").write_text("")
    (tmp_path / "shop" / "tasks.py").write_text(SHOP_TASKS)
    (tmp_path / "test_shop.py").write_text(SHOP_TESTS)
    (tmp_path / "pytest.ini").write_text(textwrap.dedent(ini))
    return tmp_path


def test_a_project_enables_it_in_its_ini_and_names_its_app(tmp_path: Path) -> None:
    project = make_project(tmp_path, """\
        [pytest]
        pythonpath = .
        asyncio_mode = auto
        relier_fixtures = true
        relier_app = shop.tasks:app
        """)
    done = run_pytest(project)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "5 passed" in done.stdout


def test_a_conftest_line_enables_it(tmp_path: Path) -> None:
    project = make_project(tmp_path, """\
        [pytest]
        pythonpath = .
        asyncio_mode = auto
        relier_app = shop.tasks:app
        """)
    (project / "conftest.py").write_text('pytest_plugins = ["relier.testing"]\n')
    done = run_pytest(project, "test_shop.py::test_retries_until_it_succeeds",
                      "test_shop.py::test_the_app_is_this_projects_and_on_a_private_server")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "2 passed" in done.stdout


def test_naming_a_module_whose_tasks_have_their_own_app_is_refused(tmp_path: Path) -> None:
    project = make_project(tmp_path, """\
        [pytest]
        pythonpath = .
        relier_fixtures = true
        relier_app = shop.tasks
        """)
    done = run_pytest(project,
                      "test_shop.py::test_the_app_is_this_projects_and_on_a_private_server")
    assert done.returncode != 0
    assert "write relier_app = shop.tasks:app" in done.stdout + done.stderr


def test_installing_relier_loads_no_fixture(tmp_path: Path) -> None:
    project = make_project(tmp_path, """\
        [pytest]
        pythonpath = .
        asyncio_mode = auto
        """)
    done = run_pytest(project, "test_shop.py::test_hard_timeout_dead_letters")
    assert done.returncode != 0
    assert "fixture 'relier_worker' not found" in done.stdout


# -- the harness, directly ------------------------------------------------------------


def _app_with_tasks() -> tuple[App, dict[str, asyncio.Event]]:
    app = App()
    events: dict[str, asyncio.Event] = {}

    @app.task(name="harness.add")
    async def add(x: int, y: int) -> int:
        return x + y

    @app.task(name="harness.block", queue="slow")
    async def block(name: str) -> None:
        events[name].set()
        await asyncio.sleep(3600)

    return app, events


async def test_drain_fails_with_what_is_left(redis_url: str) -> None:
    app, events = _app_with_tasks()
    async with pointed_at(redis_url, app):
        worker = AsyncTestWorker(app)
        await worker.start()
        events["x"] = asyncio.Event()
        await app.get_task("harness.block").apush("x")
        with pytest.raises(DrainTimeout, match="1 in flight"):
            await worker.drain(timeout=1.0)
        await worker.stop()
        # Stopped as on SIGTERM: the running task's message went back to its queue.
        assert await app.broker().client.llen("slow") == 1


async def test_async_face_runs_tasks_on_the_tests_loop(redis_url: str) -> None:
    app, _ = _app_with_tasks()
    async with pointed_at(redis_url, app):
        worker = AsyncTestWorker(app, queues=["default"])
        await worker.start()
        handle = await app.get_task("harness.add").apush(1, 2)
        await worker.drain()
        assert worker.result(handle.id) is not None
        assert await handle.aresult(timeout=5) == 3
        await worker.stop()


def test_sync_face_drains_and_stops(redis_url: str) -> None:
    app, _ = _app_with_tasks()
    app.configure(redis_url=redis_url)
    worker = SyncTestWorker(app)
    worker.start()
    try:
        handles = app.get_task("harness.add").push_many([((n, n), {}) for n in range(20)])
        worker.drain()
        meta = worker.result(handles[-1].id)
        assert meta is not None and meta.status == "SUCCESS" and meta.result == 38
    finally:
        worker.stop()
        app.close()
    assert not worker.worker.capacity.in_use
