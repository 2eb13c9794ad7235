"""Phoenix with real processes and real signals: kill -9, SIGSTOP/SIGCONT, os._exit."""

from __future__ import annotations

import signal
import time

import pytest
import redis

from relier import TaskFailed
from relier.protocol import dead_letter, registry, results
from relier.store import keys
from tests.conftest import FAST, StartWorker, WorkerProcess
from tests.polling import poll
from tests.taskapps import basic

APP = "tests.taskapps.basic:app"


pytestmark = pytest.mark.usefixtures("basic_app")


def worker_id(worker: WorkerProcess) -> str:
    return worker.wait_for_line("consuming").split("worker ", 1)[1].split()[0]


def started(client: redis.Redis, marker: str) -> list[str]:
    return [v.decode() for v in client.lrange(f"test:started:{marker}", 0, -1)]


def test_kill_9_every_task_completes_on_another_worker(
    start_worker: StartWorker, rclient: redis.Redis
) -> None:
    victim = start_worker(APP, env=FAST)
    handles = basic.whoami.push_many([(("k9", 60.0, 1.5), {}) for _ in range(8)])
    poll(lambda: len(started(rclient, "k9")) == 8, 15, "8 starts on the victim")
    survivor = start_worker(APP, env=FAST)

    victim.process.kill()  # SIGKILL: no cleanup, no goodbye
    killed_at = time.monotonic()
    poll(lambda: len(started(rclient, "k9")) >= 9, 15, "a resurrected start")
    first_restart = time.monotonic() - killed_at

    ran_on = {h.result(timeout=30) for h in handles}
    assert ran_on == {worker_id(survivor)}
    assert sorted(started(rclient, "k9")) == sorted([h.id for h in handles] * 2)
    assert first_restart < 10  # generous; the benchmark reports the default-settings figure
    survivor.wait_for_line("declared dead, 8 task(s) resurrected")
    assert rclient.exists(keys.processing("default", worker_id(victim))) == 0
    assert rclient.llen(keys.queue_list(keys.REQUEUE_QUEUE)) == 0


def test_frozen_worker_late_result_is_refused(
    start_worker: StartWorker, rclient: redis.Redis
) -> None:
    frozen = start_worker(APP, env=FAST)
    handle = basic.whoami.push("frozen", 2.0)
    poll(lambda: started(rclient, "frozen"), 10, "the first start")
    frozen.signal(signal.SIGSTOP)
    try:
        rescuer = start_worker(APP, env=FAST)
        winner = handle.result(timeout=30)
        rescuer_id = worker_id(rescuer)
        assert winner == rescuer_id
    finally:
        frozen.signal(signal.SIGCONT)
    frozen.wait_for_line("result discarded", timeout=15)
    stored = results.decode(rclient.get(keys.result(handle.id)))
    assert (stored.status, stored.result) == ("SUCCESS", rescuer_id)
    assert len(started(rclient, "frozen")) == 2


def test_event_loop_hog_is_not_declared_dead(
    start_worker: StartWorker, rclient: redis.Redis
) -> None:
    hog = start_worker(APP, env=FAST)
    start_worker(APP, env=FAST, queues="low_priority")  # a resurrector that could misjudge
    handle = basic.spin.push(4.0)  # 3x the heartbeat TTL without yielding the loop
    assert handle.result(timeout=30) > 0
    assert "declared dead" not in hog.output
    entries = [registry.decode(v) for v in rclient.hgetall(keys.WORKERS).values()]
    assert {e.state for e in entries} == {registry.ALIVE}


def test_worker_killing_task_is_quarantined_as_poison(
    start_worker: StartWorker, rclient: redis.Redis
) -> None:
    env = {**FAST, "RELIER_MAX_RESURRECTIONS": "2"}
    workers: list[WorkerProcess] = [start_worker(APP, env=env) for _ in range(3)]
    handle = basic.crash.push("poison")
    with pytest.raises(TaskFailed) as caught:
        handle.result(timeout=60)
    assert caught.value.exc_type == "PoisonTask"
    [raw] = rclient.lrange(keys.dead_letters("default"), 0, -1)
    entry = dead_letter.decode(raw)
    assert (entry.task_id, entry.reason, entry.resurrections) == (handle.id, "poison", 2)
    assert started(rclient, "poison") == [handle.id, handle.id]
    assert sum(w.process.poll() is None for w in workers) == 1  # two died, one was spared
