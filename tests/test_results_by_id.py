"""Results by id and what a finished task leaves behind: ``app.result(id)``,
``result_extended`` read by a real Celery client, ``relier inspect task ID`` of a
finished task; and the hint for a queue nobody consumes (Celery's default ``celery``)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from celery import Celery

from relier import App, TaskFailed
from tests.conftest import ROOT, StartWorker
from tests.taskapps import control
from tests.taskapps.interop_celery import make_app
from tests.test_celery_interop import close_celery

APP = "tests.taskapps.control:app"
RESULT_TIMEOUT = 30.0


@pytest.fixture
def celery_client(redis_url: str) -> Iterator[Celery]:
    app = make_app(redis_url, main="results_client")
    app.conf.result_extended = True
    yield app
    close_celery(app)


def relier_cli(redis_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "relier", *args, "--redis-url", redis_url],
                          cwd=ROOT, env=dict(os.environ), capture_output=True, text=True,
                          timeout=60)


def test_result_extended_is_read_by_celery(
    start_worker: StartWorker, celery_client: Celery
) -> None:
    queue = f"rx-{uuid.uuid4().hex[:8]}"
    worker = start_worker(APP, queues=queue, env={"RELIER_RESULT_EXTENDED": "1"})
    sent = celery_client.send_task("ctl.echo", (7,), {"label": "seven"}, queue=queue)
    assert sent.get(timeout=RESULT_TIMEOUT) == {"x": 7, "label": "seven"}
    fresh = celery_client.AsyncResult(sent.id)
    assert (fresh.name, fresh.args, fresh.kwargs) == ("ctl.echo", [7], {"label": "seven"})
    assert (fresh.queue, fresh.retries) == (queue, 0)
    assert fresh.worker.startswith("relier@") and str(worker.pid) in fresh.worker


def test_without_result_extended_celery_sees_no_name(
    start_worker: StartWorker, celery_client: Celery
) -> None:
    queue = f"rx-{uuid.uuid4().hex[:8]}"
    start_worker(APP, queues=queue)
    sent = celery_client.send_task("ctl.echo", (1,), queue=queue)
    sent.get(timeout=RESULT_TIMEOUT)
    assert celery_client.AsyncResult(sent.id).name is None  # Celery's default, kept


def test_result_extended_is_a_setting() -> None:
    assert App().settings.result_extended is False
    assert App(result_extended=True).settings.result_extended is True


@pytest.mark.usefixtures("control_app")
def test_app_result_reads_a_task_by_id(start_worker: StartWorker, redis_url: str) -> None:
    queue = f"rx-{uuid.uuid4().hex[:8]}"
    start_worker(APP, queues=queue)
    task_id = control.echo.options(queue=queue).push(3).id
    # Later, elsewhere: only the id is known (a web request returned it).
    reader = App(redis_url=redis_url)
    handle = reader.result(task_id)
    assert handle.id == task_id
    assert handle.result(timeout=RESULT_TIMEOUT) == {"x": 3, "label": ""}
    assert (handle.state, handle.info) == ("SUCCESS", {"x": 3, "label": ""})
    nobody = reader.result(str(uuid.uuid4()))
    assert (nobody.state, nobody.info) == ("PENDING", None)
    reader.close()


@pytest.mark.usefixtures("control_app")
async def test_app_result_async(start_worker: StartWorker) -> None:
    queue = f"rx-{uuid.uuid4().hex[:8]}"
    start_worker(APP, queues=queue)
    pushed = await control.echo.options(queue=queue).apush(5)
    assert await control.app.result(pushed.id).aresult(timeout=RESULT_TIMEOUT) == {
        "x": 5, "label": ""}


@pytest.mark.usefixtures("control_app")
def test_inspect_task_of_a_finished_task(start_worker: StartWorker, redis_url: str) -> None:
    queue = f"rx-{uuid.uuid4().hex[:8]}"
    start_worker(APP, queues=queue)
    handle = control.echo.options(queue=queue).push(9, "nine")
    handle.result(timeout=RESULT_TIMEOUT)
    done = relier_cli(redis_url, "inspect", "task", handle.id, "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert (report["task"], report["state"]) == ("ctl.echo", "success")
    assert report["result"] == {"x": 9, "label": "nine"}
    assert report["duration"] is not None and report["duration"] >= 0
    text = relier_cli(redis_url, "inspect", "task", handle.id).stdout
    assert "ctl.echo" in text and "took " in text and "'nine'" in text
    assert "  ?  " not in text


@pytest.mark.usefixtures("control_app")
def test_inspect_task_of_a_failed_task_shows_the_error(
    start_worker: StartWorker, redis_url: str
) -> None:
    queue = f"rx-{uuid.uuid4().hex[:8]}"
    start_worker(APP, queues=queue)
    wait = control.wait.options(queue=queue, hard_timeout=0.5).push("never")
    with pytest.raises(TaskFailed):
        wait.result(timeout=RESULT_TIMEOUT)
    report = json.loads(relier_cli(redis_url, "inspect", "task", wait.id, "--json").stdout)
    assert report["task"] == "ctl.wait"
    assert report["state"] in ("dead_lettered", "failure")
    assert "TimeLimitExceeded" in report["error"]
    assert report["duration"] is not None


def _hints(found: Any) -> list[str]:
    return [h for h in found["hints"] if "'celery'" in h]


def test_celerys_default_queue_without_a_consumer_is_pointed_out(
    start_worker: StartWorker, redis_url: str, celery_client: Celery
) -> None:
    start_worker(APP, queues=f"rx-{uuid.uuid4().hex[:8]}")  # consumes something else
    celery_client.send_task("ctl.echo", (1,))  # default routing: the `celery` queue
    queues = relier_cli(redis_url, "queues")
    assert "hint: queue 'celery' has 1 waiting message(s) and no live worker consumes it" \
        in " ".join(queues.stdout.split())
    snapshot = json.loads(relier_cli(redis_url, "inspect", "--json").stdout)
    [hint] = _hints(snapshot)
    assert "start a worker with -Q celery" in hint and "Celery's default queue" in hint
    doctor = relier_cli(redis_url, "doctor", "--json")
    assert doctor.returncode == 0  # a warning, not a problem that loses tasks
    checks = {c["name"]: c for c in json.loads(doctor.stdout)["checks"]}
    assert checks["queue celery"]["status"] == "warn"
    assert "Celery's default queue" in checks["queue celery"]["fix"]
    # Once a worker consumes it, the hint is gone and the task runs.
    start_worker(APP, queues="celery")
    snapshot = json.loads(relier_cli(redis_url, "inspect", "--json").stdout)
    assert _hints(snapshot) == []
