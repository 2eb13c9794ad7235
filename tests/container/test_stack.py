"""The image and the compose stack, for real: build the image from the Dockerfile, run
docker-compose.yml's redis, api, worker and worker-recovery services with podman (see
stack.py for why Prometheus and Grafana are not among them), push a task through the
api, SIGKILL the worker container under it, and see worker-recovery finish it.

Skipped when podman is missing, unless RELIER_REQUIRE_CONTAINERS=1 (as .ci/run sets),
which turns the skip into a failure. Deselected from a plain `pytest`: run it with
`pytest -m container tests/container -s` (it prints the image size, the time to healthy
and the recovered task).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from tests.conftest import ROOT
from tests.container.podman import (
    build_context,
    ensure_base_image,
    missing_tools,
    podman,
    podman_ok,
)
from tests.container.stack import Stack, compose_services
from tests.polling import poll

# The image build alone can take minutes on a loaded machine.
pytestmark = [pytest.mark.container, pytest.mark.timeout(900)]

TASK = "examples.web_tasks.build_report"
#: Long enough to be killed mid-run and then run in full once more.
TASK_SECONDS = 15


@dataclass(frozen=True)
class BuiltImage:
    tag: str
    base: str
    size_bytes: int
    build_s: float


@pytest.fixture(scope="module")
def services() -> dict[str, dict[str, Any]]:
    missing = missing_tools()
    if missing:
        why = (f"the container test needs {', '.join(missing)} "
               "(apt-get install -y podman runc mmdebstrap)")
        if os.environ.get("RELIER_REQUIRE_CONTAINERS") == "1":
            pytest.fail(why)
        pytest.skip(why)
    return compose_services(ROOT)


@pytest.fixture(scope="module")
def image(services: dict[str, dict[str, Any]],
          tmp_path_factory: pytest.TempPathFactory) -> Iterator[BuiltImage]:
    base = ensure_base_image()
    context = build_context(ROOT, tmp_path_factory.mktemp("context"))
    extra = services["api"]["build"]["args"]["EXTRA_PACKAGES"]
    tag = f"localhost/relier:ci-{os.getpid()}"
    started = time.monotonic()
    podman("build", "--format", "docker", "-t", tag, "--build-arg", f"BASE_IMAGE={base}",
           "--build-arg", "PIP_OFFLINE=1", "--build-arg", f"EXTRA_PACKAGES={extra}",
           str(context), timeout=900)
    size = int(podman("image", "inspect", "--format", "{{.Size}}", tag).strip())
    yield BuiltImage(tag, base, size, time.monotonic() - started)
    podman("rmi", "-f", tag, check=False)


@pytest.fixture(scope="module")
def stack(services: dict[str, dict[str, Any]], image: BuiltImage) -> Iterator[Stack]:
    running = Stack(services, image.tag, image.base)
    try:
        running.up()
        yield running
    finally:
        running.down()


def test_image_runs_relier_worker_as_non_root_with_a_heartbeat_healthcheck(
        image: BuiltImage) -> None:
    inspected = json.loads(podman("image", "inspect", image.tag))[0]
    config = inspected["Config"]
    assert config["User"] == "relier"
    assert config["Entrypoint"] == ["relier"] and config["Cmd"] == ["worker"]
    assert inspected["Healthcheck"]["Test"] == ["CMD", "relier", "health"]
    assert config["Labels"]["org.opencontainers.image.title"] == "relier"
    speedups = podman("run", "--rm", "--entrypoint", "python3", image.tag, "-c",
                      "import uvloop, hiredis, os; print(os.getuid())")
    assert speedups.strip() == "10001"


def test_worker_killed_mid_task_is_recovered_by_the_recovery_pool(
        stack: Stack, image: BuiltImage, capsys: pytest.CaptureFixture[str]) -> None:
    to_healthy_s = stack.wait_healthy(timeout=180)
    task_id = push_report(stack)
    worker_id = poll(lambda: running_on(stack, task_id, host="worker"), 60,
                     "the worker container to run the task")
    killed_at = time.monotonic()
    stack.kill("worker")
    result = poll(lambda: stored_result(stack, task_id), 120, "the recovered task's result")
    recovered_s = time.monotonic() - killed_at
    assert result["status"] == "SUCCESS" and result["result"] == {"pages": TASK_SECONDS}
    report = locate(stack, task_id)
    assert report["state"] == "success" and report["resurrections"] >= 1, report
    assert task_id in stack.logs_of("worker-recovery")
    assert not podman_ok("exec", stack.name("worker-recovery"), "relier", "health",
                         "--host", "worker"), "a dead worker's host must report unhealthy"
    metrics = scrape(stack, "worker-recovery")
    assert_counted(metrics, 'relier_tasks_total{', TASK, 'outcome="success"')
    assert_counted(metrics, "relier_resurrections_total{")
    with capsys.disabled():
        print(f"\ncontainer stack: image {image.tag} {image.size_bytes / 1e6:.0f} MB "
              f"(base {image.base}), built in {image.build_s:.0f}s; "
              f"redis+api+worker+worker-recovery healthy in {to_healthy_s:.1f}s; "
              f"task {task_id} ({TASK}) killed on {worker_id}, finished by worker-recovery "
              f"{recovered_s:.1f}s after the kill: {result['result']!r}")


def push_report(stack: Stack) -> str:
    """POST /reports to the api container, from inside it (no published ports needed)."""
    out = stack.exec("api", "python3", "-c", (
        "import json, urllib.request; req = urllib.request.Request("
        f"'http://127.0.0.1:8000/reports?pages={TASK_SECONDS}&seconds_per_page=1', method='POST'); "
        "print(json.load(urllib.request.urlopen(req, timeout=10))['task_id'])"))
    return out.strip()


def relier_json(stack: Stack, *args: str) -> Any:
    return json.loads(stack.exec("worker-recovery", "relier", *args, "--json"))


def locate(stack: Stack, task_id: str) -> dict[str, Any]:
    report: dict[str, Any] = relier_json(stack, "inspect", "task", task_id)
    return report


def running_on(stack: Stack, task_id: str, host: str) -> str | None:
    """The id of the worker on ``host`` running the task, if it is running there."""
    snapshot = relier_json(stack, "inspect")
    hosts = {w["id"]: w["host"] for w in snapshot["workers"]}
    for task in snapshot["running"]:
        if task["task_id"] == task_id and hosts.get(task["worker"]) == host:
            return str(task["worker"])
    return None


def stored_result(stack: Stack, task_id: str) -> dict[str, Any] | None:
    """The Celery result meta, once the task has succeeded or failed."""
    raw = stack.exec("redis", "redis-cli", "GET", f"celery-task-meta-{task_id}").strip()
    meta: dict[str, Any] | None = json.loads(raw) if raw else None
    return meta if meta and meta["status"] in ("SUCCESS", "FAILURE") else None


def scrape(stack: Stack, service: str) -> str:
    """GET http://<service>:9100/metrics over the stack's network, as Prometheus does."""
    return stack.exec("api", "python3", "-c", (
        "import urllib.request; print(urllib.request.urlopen("
        f"'http://{service}:9100/metrics', timeout=10).read().decode())"))


def assert_counted(metrics: str, *needles: str) -> None:
    """Some sample line contains every needle and has a value of at least 1."""
    for line in metrics.splitlines():
        if all(n in line for n in needles) and float(line.rsplit(" ", 1)[1]) >= 1:
            return
    raise AssertionError(f"no sample with {needles} >= 1 in:\n{metrics}")
