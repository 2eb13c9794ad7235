"""`relier worker --processes N`: children restarted, signals forwarded, one /metrics."""

from __future__ import annotations

import os
import signal
import urllib.request

import pytest
import redis
from prometheus_client.parser import text_string_to_metric_families

from relier.embedded import free_port
from relier.protocol import registry
from relier.store import keys
from tests.conftest import FAST, StartWorker, WorkerProcess
from tests.polling import poll
from tests.taskapps import observe

APP = "tests.taskapps.observe:app"

pytestmark = pytest.mark.usefixtures("observe_app")


def parent_of(pid: int) -> int | None:
    """The parent of a running process; None once it has exited (zombies count as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            state, parent = stat.read().rsplit(")", 1)[1].split()[:2]
    except FileNotFoundError:
        return None
    return None if state == "Z" else int(parent)


def alive_children(client: redis.Redis, supervisor: WorkerProcess) -> dict[int, str]:
    """pid -> worker id of the registered, beating workers that are our children."""
    found = {}
    for raw in client.hgetall(keys.WORKERS).values():
        info = registry.decode(raw)
        if (info.state == registry.ALIVE and client.exists(keys.heartbeat(info.id))
                and parent_of(info.pid) == supervisor.pid):
            found[info.pid] = info.id
    return found


def successes(port: int, task: str) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as reply:
        text = reply.read().decode()
    return sum(s.value for f in text_string_to_metric_families(text) for s in f.samples
               if s.name == "relier_tasks_total" and s.labels.get("task") == task
               and s.labels.get("outcome") == "success")


def test_children_are_restarted_and_report_through_one_endpoint(
    start_worker: StartWorker, rclient: redis.Redis
) -> None:
    port = free_port()
    supervisor = start_worker(APP, "--processes", "2", "--metrics-port", str(port), env=FAST)
    first = poll(lambda: len(c := alive_children(rclient, supervisor)) == 2 and c, 30,
                 "two children registered")

    handles = observe.ok.push_many([((i,), {}) for i in range(20)])
    assert [h.result(timeout=15) for h in handles] == list(range(20))
    # A result is published a moment before its worker counts it: poll, do not race.
    poll(lambda: successes(port, "observe.ok") == 20, 10, "20 successes on /metrics")

    # A child exits with an error (as one recycling itself would): it is replaced, and
    # the task it held is resurrected by its sibling.
    crashed = observe.exit_worker.push(3)
    ran_on = int(crashed.result(timeout=30))
    supervisor.wait_for_line("exited unexpectedly (exit code 3)")
    assert parent_of(ran_on) == supervisor.pid
    # And one killed outright is replaced too.
    [victim] = [pid for pid in first if parent_of(pid) == supervisor.pid]
    os.kill(victim, signal.SIGKILL)
    supervisor.wait_for_line("exited unexpectedly (exit code -9)")

    now = poll(lambda: len(c := alive_children(rclient, supervisor)) == 2
               and not set(c) & set(first) and c, 60, "two new children")
    assert len(now) == 2
    more = observe.ok.push_many([((i,), {}) for i in range(10)])
    assert [h.result(timeout=15) for h in more] == list(range(10))
    # Counters of the children that died are kept: the endpoint's totals never go down.
    poll(lambda: successes(port, "observe.ok") == 30, 10, "30 successes on /metrics")


def test_sigterm_drains_every_child_and_a_lost_supervisor_stops_them(
    start_worker: StartWorker, rclient: redis.Redis
) -> None:
    # Three slots each: six tasks keep both children busy.
    supervisor = start_worker(APP, "--processes", "2", "--concurrency", "3", env=FAST)
    children = poll(lambda: len(c := alive_children(rclient, supervisor)) == 2 and c, 30,
                    "two children registered")
    handles = observe.hold.push_many([(("drain", 1.5), {}) for _ in range(6)])
    poll(lambda: rclient.llen("test:started:drain") == 6, 15, "six starts")
    supervisor.signal(signal.SIGTERM)
    assert supervisor.wait(30) == 0
    assert {h.result(timeout=5) for h in handles} == set(children.values())
    assert all(parent_of(pid) is None for pid in children)  # none left behind
    assert rclient.hlen(keys.WORKERS) == 0  # every child deregistered cleanly

    orphaned = start_worker(APP, "--processes", "2", env=FAST)
    children = poll(lambda: len(c := alive_children(rclient, orphaned)) == 2 and c, 30,
                    "two children registered")
    orphaned.process.kill()  # SIGKILL to the supervisor alone
    orphaned.wait(10)
    poll(lambda: all(parent_of(pid) is None for pid in children), 30,
         "the children to stop by themselves")
    poll(lambda: rclient.hlen(keys.WORKERS) == 0, 10, "the children to deregister")


def test_a_worker_that_recycles_itself_is_restarted(
    start_worker: StartWorker, rclient: redis.Redis
) -> None:
    supervisor = start_worker(APP, "--processes", "1",
                              env={**FAST, "RELIER_MAX_ABANDONED_THREADS": "0"})
    [first] = poll(lambda: alive_children(rclient, supervisor), 30, "the child registered")
    observe.sync_hang.push(30.0)  # past its hard timeout: one abandoned thread, limit 0
    supervisor.wait_for_line("exited unexpectedly (exit code 75)")
    [second] = poll(lambda: set(c := alive_children(rclient, supervisor)) - {first} and c,
                    30, "a fresh child")
    assert second != first
    assert observe.ok.push(5).result(timeout=15) == 5
