"""`relier health`: the container HEALTHCHECK. Exit 0 while a worker on this host beats,
1 once none does, 2 when Redis cannot be asked; real worker processes, real SIGKILL."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys

import redis

from relier.embedded import free_port
from relier.observability.health import check_host
from relier.store import keys
from tests.conftest import FAST, StartWorker
from tests.polling import poll

APP = "tests.taskapps.basic:app"


def health(redis_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "relier", "health", "--redis-url", redis_url,
                           *args], capture_output=True, text=True, timeout=60)


def test_healthy_while_beating_then_unhealthy_after_kill_9(
        redis_url: str, start_worker: StartWorker) -> None:
    worker = start_worker(APP, env=FAST)
    worker_id = worker.wait_for_line("consuming").split("worker ", 1)[1].split()[0]
    alive = health(redis_url)
    assert alive.returncode == 0, alive.stderr
    assert alive.stdout.strip() == (
        f"ok: 1 worker(s) beating on {socket.gethostname()}: {worker_id}")
    worker.signal(signal.SIGKILL)
    dead = poll(lambda: (done := health(redis_url)).returncode == 1 and done, 30,
                "the health check to notice the dead worker")
    assert dead.stderr.strip().startswith(f"unhealthy: worker(s) on {socket.gethostname()}")
    assert worker_id in dead.stderr


def test_another_hosts_worker_does_not_make_this_host_healthy(
        redis_url: str, start_worker: StartWorker) -> None:
    start_worker(APP, env=FAST)
    done = health(redis_url, "--host", "some-other-container")
    assert done.returncode == 1
    assert done.stderr.strip() == "unhealthy: no worker registered on some-other-container"


def test_no_worker_at_all_is_unhealthy(redis_url: str) -> None:
    done = health(redis_url)
    assert done.returncode == 1
    assert "no worker registered" in done.stderr


def test_unreachable_redis_is_one_line_and_nonzero() -> None:
    done = health(f"redis://127.0.0.1:{free_port()}/0")
    assert done.returncode == 2
    assert done.stderr.startswith("error: cannot reach Redis")
    assert "Traceback" not in done.stderr


def test_undecodable_registry_entries_are_skipped_and_counted(
        rclient: redis.Redis) -> None:
    rclient.hset(keys.WORKERS, mapping={"junk": b"\xff not json", "half": b'{"id": "x"}'})
    found = check_host(rclient, "any-host")
    assert not found.healthy
    assert found.unreadable == 2
    assert found.summary() == "unhealthy: no worker registered on any-host"
