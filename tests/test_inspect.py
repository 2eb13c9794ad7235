"""`relier inspect`, `inspect task`, `top --once`, `queues` and `purge` against real workers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

import pytest
import redis

from relier import TaskFailed
from relier.store import keys
from tests.conftest import FAST, ROOT, StartWorker, WorkerProcess
from tests.polling import poll
from tests.taskapps import observe

APP = "tests.taskapps.observe:app"

pytestmark = pytest.mark.usefixtures("observe_app")


def relier(redis_url: str, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "relier", *args, "--redis-url", redis_url],
                          capture_output=True, text=True, timeout=60, input=stdin,
                          cwd=ROOT, env={**os.environ, "COLUMNS": "200"})


def inspect_json(redis_url: str, *args: str) -> Any:
    done = relier(redis_url, "inspect", *args, "--json")
    assert done.returncode in (0, 1), done.stderr
    return json.loads(done.stdout)


def started(client: redis.Redis, marker: str) -> list[str]:
    return [v.decode() for v in client.lrange(f"test:started:{marker}", 0, -1)]


def worker_id(worker: WorkerProcess) -> str:
    return worker.wait_for_line("consuming").split("worker ", 1)[1].split()[0]


def test_inspect_shows_running_tasks_then_resurrection_after_kill_9(
    start_worker: StartWorker, rclient: redis.Redis, redis_url: str
) -> None:
    victim = start_worker(APP, env=FAST)
    handles = observe.hold.push_many([(("k9", 60.0, 3.0), {}) for _ in range(3)])
    ids = {h.id for h in handles}
    poll(lambda: len(started(rclient, "k9")) == 3, 15, "three starts")

    def all_running() -> Any:
        snap = inspect_json(redis_url)
        return snap if {r["task_id"] for r in snap["running"]} == ids else None

    snap = poll(all_running, 15, "the heartbeat to publish the three tasks")
    [worker] = snap["workers"]
    assert (worker["id"], worker["pid"], worker["state"]) == (worker_id(victim), victim.pid,
                                                              "alive")
    assert worker["in_flight"] == 3
    assert {"id", "host", "pid", "queues", "concurrency", "in_flight", "started_at",
            "last_heartbeat", "state"} <= worker.keys()
    for running in snap["running"]:
        assert (running["task"], running["queue"], running["worker"], running["attempt"]) == (
            "observe.hold", "default", worker["id"], 1)
        assert 0 <= running["runtime"] < 30
        assert {"task_id", "started_at", "runtime"} <= running.keys()
    [default] = [q for q in snap["queues"] if q["name"] == "default"]
    assert (default["in_flight"], default["depth"]) == (3, 0)
    assert {"name", "depth", "in_flight", "delayed", "dlq", "oldest_age"} <= default.keys()

    survivor = start_worker(APP, env=FAST)
    victim.process.kill()  # SIGKILL

    def victim_dead() -> Any:
        found = inspect_json(redis_url)
        states = {w["id"]: w for w in found["workers"]}
        dead = states.get(worker["id"])
        return found if dead and dead["state"] == "dead" else None

    after = poll(victim_dead, 20, "the victim marked dead")
    dead = next(w for w in after["workers"] if w["id"] == worker["id"])
    assert dead["resurrected"] == 3 and dead["died_at"] is not None
    assert {r["task_id"] for r in after["resurrected"]} == ids
    assert {r["from_worker"] for r in after["resurrected"]} == {worker["id"]}
    assert {w["state"] for w in after["workers"] if w["id"] != worker["id"]} == {"alive"}

    def rerunning() -> Any:
        found = inspect_json(redis_url)
        mine = [r for r in found["running"] if r["task_id"] in ids]
        return found if len(mine) == 3 else None

    again = poll(rerunning, 20, "the three tasks running on the survivor")
    assert {r["worker"] for r in again["running"]} == {worker_id(survivor)}
    assert {r["resurrections"] for r in again["running"]} == {1}
    assert {r["now"] for r in again["resurrected"]} == {f"running on {worker_id(survivor)}"}
    assert {h.result(timeout=30) for h in handles} == {worker_id(survivor)}


def test_inspect_task_follows_one_task(
    start_worker: StartWorker, rclient: redis.Redis, redis_url: str
) -> None:
    later = observe.ok.options(countdown=300).push(1)
    report = inspect_json(redis_url, "task", later.id)
    assert (report["state"], report["task"], report["queue"]) == ("delayed", "observe.ok",
                                                                  "default")
    assert any(e["event"] == "sent" for e in report["history"])

    waiting = observe.ok.push(2)
    report = inspect_json(redis_url, "task", waiting.id)
    assert report["state"] == "queued" and "0 message(s) ahead" in report["where"]

    worker = start_worker(APP, env=FAST)
    assert waiting.result(timeout=10) == 2
    report = inspect_json(redis_url, "task", waiting.id)
    assert report["state"] == "success"
    assert [e["event"] for e in report["history"]] == ["success"]

    running = observe.hold.push("one", 3.0)
    poll(lambda: started(rclient, "one"), 10, "the start")
    report = poll(lambda: (r := inspect_json(redis_url, "task", running.id))["history"][-1]
                  ["at"] and r, 10, "the running task's start time")
    assert (report["state"], report["worker"]) == ("running", worker_id(worker))
    assert report["history"][-1]["event"] == "running"

    failed = observe.boom.push("kaput")
    with pytest.raises(TaskFailed):
        failed.result(timeout=10)
    report = inspect_json(redis_url, "task", failed.id)
    assert report["state"] == "dead_lettered"
    assert "exception: RuntimeError('kaput')" in " ".join(e["detail"] for e in report["history"])

    done = relier(redis_url, "inspect", "task", "no-such-id")
    assert done.returncode == 1 and "unknown" in done.stdout


def test_top_once_renders_queues_and_workers(
    start_worker: StartWorker, redis_url: str
) -> None:
    worker = start_worker(APP, queues="default,reports")
    observe.ok.options(queue="emails").push(1)  # a queue no worker consumes
    done = relier(redis_url, "top", "--once")
    assert done.returncode == 0, done.stderr
    for queue in ("default", "reports", "emails"):
        assert queue in done.stdout
    assert worker_id(worker) in done.stdout and str(worker.pid) in done.stdout
    assert "\x1b[?1049h" not in done.stdout  # one frame, not the live full-screen view


def test_queues_json_and_purge(redis_url: str, rclient: redis.Redis) -> None:
    observe.ok.push_many([((i,), {}) for i in range(5)])
    observe.ok.options(priority=9).push(9)
    observe.ok.options(countdown=600).push(0)
    listed = json.loads(relier(redis_url, "queues", "--json").stdout)
    [default] = [q for q in listed if q["name"] == "default"]
    assert (default["depth"], default["delayed"]) == (6, 1)
    assert 0 <= default["oldest_age"] < 60

    refused = relier(redis_url, "purge", "default", stdin="n\n")
    assert refused.returncode == 1 and "delete 6 message(s)" in refused.stdout
    assert rclient.llen(keys.queue_list("default")) == 5

    done = relier(redis_url, "purge", "default", "--yes")
    assert done.returncode == 0 and "purged 6 message(s)" in done.stdout
    assert sum(rclient.llen(name) for name in keys.queue_lists("default")) == 0
    assert rclient.zcard(keys.delayed("default")) == 1  # delayed ones only with --delayed
    done = relier(redis_url, "purge", "default", "--yes", "--delayed")
    assert "purged 1 message(s)" in done.stdout
    assert relier(redis_url, "purge", "default", "--yes").stdout.startswith("'default' has")
