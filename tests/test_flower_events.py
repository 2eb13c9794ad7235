"""Celery events from a Relier worker (`--events`), read by a real Flower."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from relier import TaskFailed
from relier.embedded import free_port
from tests.conftest import StartWorker
from tests.polling import poll
from tests.taskapps import observe

APP = "tests.taskapps.observe:app"

pytestmark = pytest.mark.usefixtures("observe_app")


@pytest.fixture
def flower(redis_url: str, tmp_path: Any) -> Iterator[int]:
    """A real Flower on the test's database; yields its port."""
    port = free_port()
    log = open(tmp_path / "flower.log", "wb")  # noqa: SIM115 - closed below
    process = subprocess.Popen(
        [sys.executable, "-m", "celery", "--broker", redis_url, "flower",
         f"--port={port}", "--address=127.0.0.1", "--persistent=False"],
        env={**os.environ, "FLOWER_UNAUTHENTICATED_API": "1"}, cwd=tmp_path,
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        poll(lambda: _get(port, "/healthcheck") is not None, 30, "Flower to answer")
        yield port
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(10)
        log.close()


def _get(port: int, path: str) -> Any:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as reply:
            body = reply.read().decode()
    except (urllib.error.URLError, ConnectionError):
        return None
    try:
        return json.loads(body)
    except json.JSONDecodeError:
        return body


def test_flower_shows_the_worker_and_its_tasks(
    start_worker: StartWorker, flower: int
) -> None:
    worker = start_worker(APP, "--events")
    name = "relier@" + worker.wait_for_line("consuming").split("worker ", 1)[1].split()[0]
    poll(lambda: (_get(flower, "/api/workers?status=1") or {}).get(name) is True, 30,
         "Flower to see the worker online")

    good = observe.ok.push(7)
    bad = observe.boom.push("for flower")
    assert good.result(timeout=10) == 7
    with pytest.raises(TaskFailed):
        bad.result(timeout=10)

    def both_seen() -> Any:
        tasks = _get(flower, "/api/tasks") or {}
        return tasks if {good.id, bad.id} <= tasks.keys() and \
            tasks[good.id]["state"] == "SUCCESS" and tasks[bad.id]["state"] == "FAILURE" \
            else None

    tasks = poll(both_seen, 30, "Flower to see both tasks finish")
    assert tasks[good.id]["name"] == "observe.ok" and tasks[good.id]["worker"] == name
    assert tasks[good.id]["args"] == "(7,)"
    assert "for flower" in tasks[bad.id]["exception"]

    worker.signal(signal.SIGTERM)
    assert worker.wait(30) == 0
    poll(lambda: (_get(flower, "/api/workers?status=1") or {}).get(name) is False, 30,
         "Flower to see the worker go offline")
