"""The loop-stall watchdog on real worker subprocesses: a task that blocks the event loop
is named with its stack; past the kill limit its worker ends, Phoenix resurrects the task
elsewhere, and a task that keeps doing it is quarantined as poison."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest
import redis

from relier import ResultTimeout, TaskFailed
from relier.protocol import dead_letter
from relier.runtime.watchdog import EXIT_LOOP_STALLED
from relier.store import keys
from tests.conftest import FAST, StartWorker, WorkerProcess
from tests.polling import poll
from tests.taskapps import timeouts

APP = "tests.taskapps.timeouts:app"

pytestmark = pytest.mark.usefixtures("timeouts_app")


def starts(client: redis.Redis, marker: str) -> list[str]:
    return [v.decode().split()[0] for v in client.lrange(timeouts.started_key(marker), 0, -1)]


def test_a_short_stall_is_logged_with_the_blocking_task_and_its_stack(
    start_worker: StartWorker,
) -> None:
    worker = start_worker(APP, env={"RELIER_LOOP_STALL_WARN": "0.5",
                                    "RELIER_LOOP_STALL_KILL": "0"})
    handle = timeouts.block_loop.push("short-stall", 2.0)
    assert handle.result(timeout=30) == "unblocked"
    line = worker.wait_for_line("event loop blocked for")
    assert "loop_stall_warn=0.5s; 1 stall(s) on this worker" in line
    assert f"Blocked by task timeouts.block_loop[{handle.id}] (attempt 1)" in worker.output
    # The stack names the blocking line of the task.
    assert "in block_loop" in worker.output
    assert "time.sleep(seconds)" in worker.output
    worker.wait_for_line("event loop turning again after a stall of")
    assert worker.process.poll() is None


def test_a_suspended_process_is_not_taken_for_a_stalled_loop(
    start_worker: StartWorker,
) -> None:
    worker = start_worker(APP, env={"RELIER_LOOP_STALL_WARN": "0.5",
                                    "RELIER_LOOP_STALL_KILL": "1.5"})
    worker.signal(signal.SIGSTOP)
    try:
        with pytest.raises(ResultTimeout):  # frozen for twice the kill limit
            timeouts.add.push(1, 1).result(timeout=3)
    finally:
        worker.signal(signal.SIGCONT)
    assert timeouts.add.push(2, 2).result(timeout=30) == 4
    assert worker.process.poll() is None
    assert "event loop blocked" not in worker.output


def test_loop_blocker_ends_its_workers_then_is_quarantined_as_poison(
    start_worker: StartWorker, rclient: redis.Redis
) -> None:
    env = {**FAST, "RELIER_LOOP_STALL_WARN": "0.5", "RELIER_LOOP_STALL_KILL": "2",
           "RELIER_MAX_RESURRECTIONS": "2"}
    workers: list[WorkerProcess] = [start_worker(APP, env=env) for _ in range(3)]
    handle = timeouts.block_loop.push("blocker", 60.0)

    with pytest.raises(TaskFailed) as caught:
        handle.result(timeout=90)
    assert caught.value.exc_type == "PoisonTask"
    [raw] = rclient.lrange(keys.dead_letters("default"), 0, -1)
    entry = dead_letter.decode(raw)
    assert (entry.task_id, entry.reason, entry.resurrections) == (handle.id, "poison", 2)
    # Two runs, on two workers, each ended by its watchdog; the third worker was spared.
    assert starts(rclient, "blocker") == [handle.id, handle.id]
    poll(lambda: sum(w.process.poll() is not None for w in workers) == 2, 30,
         "the two stalled workers to exit")
    ended = [w for w in workers if w.process.poll() is not None]
    for worker in ended:
        assert worker.wait() == EXIT_LOOP_STALLED
        assert f"Blocked by task timeouts.block_loop[{handle.id}]" in worker.output
        assert "loop_stall_kill=2s): ending the process" in worker.output
    [survivor] = [w for w in workers if w.process.poll() is None]
    assert timeouts.add.push(3, 4).result(timeout=30) == 7
    assert "event loop blocked" not in survivor.output


@pytest.mark.parametrize(("env", "message"), [
    ({"RELIER_LOOP_STALL_WARN": "5", "RELIER_LOOP_STALL_KILL": "1"},
     "loop_stall_kill (1s) must be above loop_stall_warn (5s)"),
    ({"RELIER_LOOP_STALL_WARN": "0"}, "loop_stall_warn must be > 0 seconds"),
    ({"RELIER_MAX_ABANDONED_THREADS": "-1"}, "max_abandoned_threads must be an int >= 0"),
])
def test_bad_limits_stop_the_worker_before_it_starts(
    env: dict[str, str], message: str, redis_url: str
) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "relier", "worker", "-A", APP, "--redis-url", redis_url],
        capture_output=True, text=True, timeout=60, env={**os.environ, **env},
    )
    assert done.returncode == 2
    assert message in done.stderr
    assert "Traceback" not in done.stderr
