"""Rolling-deploy hand-off with real processes: old workers (release 1) keep running and
fetching while a new worker (release 2) starts; what the old ones deferred reaches the new
one within 2 s of its start.

A deferred payload waits in its queue's deferred set, which a worker only takes from for
tasks it can run; the old workers never take it back, whatever their number.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
import redis

from relier.protocol import dead_letter, registry
from relier.store import keys
from tests.conftest import StartWorker
from tests.polling import poll
from tests.taskapps import deploy_v1, deploy_v2

V1 = "tests.taskapps.deploy_v1:app"
V2 = "tests.taskapps.deploy_v2:app"
#: The issue's bound, from the new worker's start to the deferred payload running.
HANDOFF_S = 2.0


@pytest.fixture(autouse=True)
def deploy_apps(redis_url: str) -> Iterator[None]:
    for app in (deploy_v1.app, deploy_v2.app):
        app.configure(redis_url=redis_url)
    yield
    for app in (deploy_v1.app, deploy_v2.app):
        app.close()


def ran(rclient: redis.Redis, task_id: str) -> bool:
    return any(task_id in r.decode() for r in rclient.lrange(deploy_v1.RUNS, 0, -1))


def test_newer_version_and_new_task_reach_the_new_worker_within_2s(
    start_worker: StartWorker, rclient: redis.Redis
) -> None:
    olds = [start_worker(V1) for _ in range(2)]
    newer = deploy_v2.greet.push(deploy_v2.Person("Ada", "Lovelace"), deploy_v2.Greeting.HI)
    unknown = deploy_v2.launch.push({"rocket": "Ariane", "at": datetime(2031, 1, 1, tzinfo=UTC)})
    poll(lambda: rclient.zcard(keys.deferred("default")) == 2, 30, "both deferred")
    # The old workers keep fetching: a stream of version 1 work runs on them meanwhile.
    busy = [deploy_v1.note.push(f"o-{i}") for i in range(20)]
    assert all(h.result(timeout=30) == {"order": f"o-{i}"} for i, h in enumerate(busy))

    new = start_worker(V2)
    ready = time.monotonic()
    poll(lambda: ran(rclient, newer.id) and ran(rclient, unknown.id), 30, "both ran")
    handed_over = time.monotonic() - ready
    assert handed_over < HANDOFF_S, f"hand-off took {handed_over:.2f}s"
    assert newer.result(timeout=10) == "v2 hi Ada Lovelace"
    assert unknown.result(timeout=10) == "Ariane at 2031"
    new_id = new.wait_for_line("consuming").split("worker ", 1)[1].split()[0]
    assert f"took deferred task {newer.id}" in new.output
    # Each old worker deferred each payload at most once, and never ran it.
    for old in olds:
        assert old.output.count(f"deferring {newer.id}") <= 1
        assert old.output.count(f"deferring {unknown.id}") <= 1
    assert rclient.zcard(keys.deferred("default")) == 0
    # The registry advertises what each release runs.
    entries = {e.id: e for e in map(registry.decode, rclient.hgetall(keys.WORKERS).values())}
    assert entries[new_id].tasks["deploy.greet"] == 2 and "deploy.launch" in entries[new_id].tasks
    assert {e.tasks.get("deploy.greet") for e in entries.values()} == {1, 2}


def test_nothing_is_dead_lettered_inside_the_window_while_no_capable_worker_exists(
    start_worker: StartWorker, rclient: redis.Redis
) -> None:
    """Old workers only: a 4 s window holds the payload, then the DLQ takes it."""
    window = {"RELIER_DEFER_WINDOW": "4"}
    for _ in range(2):
        start_worker(V1, env=window)
    handle = deploy_v2.greet.push(deploy_v2.Person("Ada", "Lovelace"))
    poll(lambda: rclient.llen(keys.dead_letters("default")) == 1, 60, "the dead letter")
    entry = dead_letter.decode(rclient.lindex(keys.dead_letters("default"), 0))
    assert (entry.task_id, entry.reason) == (handle.id, "version_too_new")
    assert entry.failed_at - entry.message["headers"]["relier_first_deferred_at"] >= 4
    assert not ran(rclient, handle.id)
