"""Canvas with a real Celery 5, both ways, on the test session's real Redis.

Celery producers send chains, chords and link/link_error callbacks that Relier workers
(subprocesses) carry out, and Celery's ``AsyncResult``/``GroupResult`` read the results;
Relier's native ``chain``/``group``/``chord`` give the same outcome, and a Relier-built
chain runs on a real ``celery worker``. A chain survives ``kill -9`` of the worker in the
middle of a step with every step run and none enqueued twice.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import redis
from celery import Celery, chain, chord, group
from celery.result import GroupResult

import relier
from relier.store import keys
from tests.conftest import FAST, StartWorker, WorkerProcess
from tests.polling import poll
from tests.taskapps import interop_relier
from tests.taskapps.interop_celery import URL_ENV, make_app
from tests.test_celery_interop import close_celery

RELIER_APP = "tests.taskapps.interop_relier:app"
CELERY_APP = "tests.taskapps.interop_celery"
#: Seconds to wait for a result: generous, the machine is shared and slow.
RESULT_TIMEOUT = 60.0


def unique_queue(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def celery_app(redis_url: str) -> Iterator[Celery]:
    app = make_app(redis_url, main="canvas_client")
    yield app
    close_celery(app)


@pytest.fixture
def start_celery(redis_url: str) -> Iterator[Any]:
    started: list[WorkerProcess] = []

    def start(queue: str) -> WorkerProcess:
        args = [sys.executable, "-m", "celery", "-A", CELERY_APP, "worker", "-P", "solo",
                "-Q", queue, "-n", f"canvas-{uuid.uuid4().hex[:8]}@%h", "--without-mingle",
                "--without-gossip", "--without-heartbeat", "-l", "info"]
        worker = WorkerProcess(args, {**os.environ, "PYTHONUNBUFFERED": "1",
                                      URL_ENV: redis_url})
        started.append(worker)
        worker.wait_for_line(" ready.", timeout=90)
        return worker

    yield start
    for worker in started:
        worker.kill()


@pytest.fixture
async def native(redis_url: str) -> AsyncIterator[relier.App]:
    """The Relier app whose tasks the native canvas is built from, on this database."""
    app = interop_relier.app
    app.configure(redis_url=redis_url)
    yield app
    await app.aclose()
    app.close()


def records(rclient: redis.Redis, count: int) -> list[dict[str, Any]]:
    """The first ``count`` calls of ``interop.record`` (waits for them)."""
    poll(lambda: rclient.llen(interop_relier.RECORDS) >= count, RESULT_TIMEOUT,
         f"{count} interop.record call(s)")
    return [json.loads(r) for r in rclient.lrange(interop_relier.RECORDS, 0, -1)]


# == Celery producer -> Relier workers =====================================================


def test_celery_three_step_chain_completes_on_relier(
    start_worker: StartWorker, celery_app: Celery
) -> None:
    queue = unique_queue("chain")
    start_worker(RELIER_APP, queues=queue)
    add = celery_app.signature("interop.add", queue=queue)
    result = chain(add.clone((1, 2)), add.clone((10,)), add.clone((100,))).apply_async()
    assert result.get(timeout=RESULT_TIMEOUT) == 113
    # Every step's result is readable, and the ids link up the way Celery links them.
    assert result.parent.get(timeout=RESULT_TIMEOUT) == 13
    assert result.parent.parent.get(timeout=RESULT_TIMEOUT) == 3
    assert [r.state for r in (result, result.parent, result.parent.parent)] == ["SUCCESS"] * 3


def test_celery_chain_with_a_failing_step_fails_the_rest(
    start_worker: StartWorker, celery_app: Celery
) -> None:
    queue = unique_queue("chain-fail")
    start_worker(RELIER_APP, queues=queue)
    add = celery_app.signature("interop.add", queue=queue)
    fail = celery_app.signature("interop.fail", ("stop",), immutable=True, queue=queue)
    result = chain(add.clone((1, 2)), fail, add.clone((5,))).apply_async()
    # The step after the failure never runs: Celery's backend marks it failed with the
    # same error, so the chain's result is not PENDING forever.
    with pytest.raises(ValueError, match="stop"):
        result.get(timeout=RESULT_TIMEOUT)
    assert result.state == "FAILURE"


def test_celery_chord_of_ten_calls_back_once_on_relier(
    start_worker: StartWorker, celery_app: Celery, rclient: redis.Redis
) -> None:
    queue = unique_queue("chord")
    start_worker(RELIER_APP, queues=queue)
    add = celery_app.signature("interop.add", queue=queue)
    tsum = celery_app.signature("interop.tsum", queue=queue)
    result = chord([add.clone((i, i)) for i in range(10)], tsum).apply_async()
    assert result.get(timeout=RESULT_TIMEOUT) == sum(2 * i for i in range(10))
    header: GroupResult = result.parent
    assert header.get(timeout=RESULT_TIMEOUT) == [2 * i for i in range(10)]
    assert header.completed_count() == 10
    # The join is cleaned up and marked done, as Celery's own worker leaves it.
    gid = header.id
    assert rclient.get(keys.taskset(gid, ".c")) == b"done"
    assert not rclient.exists(keys.taskset(gid, ".j"), keys.taskset(gid, ".s"))


def test_chord_with_chains_in_its_header(
    start_worker: StartWorker, celery_app: Celery
) -> None:
    queue = unique_queue("chord-chains")
    start_worker(RELIER_APP, queues=queue)
    add = celery_app.signature("interop.add", queue=queue)
    tsum = celery_app.signature("interop.tsum", queue=queue)
    ok = chord([chain(add.clone((1, 1)), add.clone((1,))), add.clone((2, 2))], tsum)
    assert ok.apply_async().get(timeout=RESULT_TIMEOUT) == 7
    # The chain's first step fails: its last step's chord part is joined as failed.
    fail = celery_app.signature("interop.fail", ("early",), immutable=True, queue=queue)
    bad = chord([chain(fail, add.clone((1,))), add.clone((2, 2))], tsum).apply_async()
    body = celery_app.AsyncResult(bad.id)
    poll(lambda: body.state == "FAILURE", RESULT_TIMEOUT, "the chord body to fail")
    assert type(body.result).__name__ == "ChordError"
    assert "raised ValueError" in str(body.result)


def test_a_revoked_chord_part_fails_the_chord(
    start_worker: StartWorker, native: relier.App, celery_app: Celery
) -> None:
    queue = unique_queue("chord-revoke")
    add = celery_app.signature("interop.add", queue=queue)
    result = chord([add.clone((i, i)) for i in range(3)],
                   celery_app.signature("interop.tsum", queue=queue)).apply_async()
    part = result.parent.results[1]
    native.result(part.id).revoke()  # while it waits: no worker runs the queue yet
    start_worker(RELIER_APP, queues=queue)
    body = celery_app.AsyncResult(result.id)
    poll(lambda: body.state == "FAILURE", RESULT_TIMEOUT, "the chord body to fail")
    assert type(body.result).__name__ == "ChordError"
    assert part.id in str(body.result)
    assert part.state == "REVOKED"


def test_chord_header_split_between_celery_and_relier_calls_back_once(
    start_worker: StartWorker, start_celery: Any, celery_app: Celery, rclient: redis.Redis
) -> None:
    relier_queue, celery_queue = unique_queue("chord-r"), unique_queue("chord-c")
    start_worker(RELIER_APP, queues=relier_queue)
    start_celery(celery_queue)
    add = celery_app.signature("interop.add", queue=relier_queue)
    mul = celery_app.signature("interop.celery_mul", queue=celery_queue)
    header = [add.clone((i, 0)) if i % 2 else mul.clone((i, 1)) for i in range(10)]
    result = chord(header, celery_app.signature("interop.tsum", queue=relier_queue)
                   ).apply_async()
    assert result.get(timeout=RESULT_TIMEOUT) == sum(range(10))
    assert result.parent.get(timeout=RESULT_TIMEOUT) == list(range(10))


def test_celery_link_and_link_error_run_on_relier(
    start_worker: StartWorker, celery_app: Celery, rclient: redis.Redis
) -> None:
    queue = unique_queue("links")
    start_worker(RELIER_APP, queues=queue)
    record = celery_app.signature("interop.record", queue=queue)
    ok = celery_app.send_task("interop.add", (1, 2), queue=queue,
                              link=record.clone(("linked",)))
    assert ok.get(timeout=RESULT_TIMEOUT) == 3
    (called,) = records(rclient, 1)
    assert called["args"] == [3, "linked"]  # the parent's result comes first
    bad = celery_app.send_task("interop.fail", ("boom",), queue=queue,
                               link_error=record.clone(kwargs={"errback": True}))
    with pytest.raises(ValueError):
        bad.get(timeout=RESULT_TIMEOUT)
    errback = records(rclient, 2)[1]
    # Celery's errback call for a task signature: the failed task's id as the argument.
    assert errback["args"] == [bad.id] and errback["kwargs"] == {"errback": True}


def test_link_error_runs_when_a_task_is_quarantined_as_poison(
    start_worker: StartWorker, celery_app: Celery, rclient: redis.Redis
) -> None:
    queue = unique_queue("poison")
    env = {**FAST, "RELIER_MAX_RESURRECTIONS": "2"}
    for _ in range(3):  # two die of it, the third quarantines it
        start_worker(RELIER_APP, queues=f"{queue},re-queue", env=env)
    record = celery_app.signature("interop.record", queue=queue)
    result = celery_app.send_task("interop.crash", queue=queue,
                                  link_error=record.clone(("poisoned",)))
    with pytest.raises(Exception, match="worker died"):
        result.get(timeout=RESULT_TIMEOUT)
    (errback,) = records(rclient, 1)
    assert errback["args"] == [result.id, "poisoned"]


def test_unsupported_canvas_is_refused_with_the_reason(
    start_worker: StartWorker, celery_app: Celery, rclient: redis.Redis
) -> None:
    queue = unique_queue("nested")
    start_worker(RELIER_APP, queues=queue)
    add = celery_app.signature("interop.add", queue=queue)
    # Celery turns "group then task" inside a chain into a nested chord: not supported.
    result = chain(add.clone((1, 1)), group(add.clone((1,)), add.clone((2,))),
                   celery_app.signature("interop.tsum", queue=queue)).apply_async()
    first = result.parent.parent if result.parent.parent is not None else result.parent
    with pytest.raises(Exception, match="chord"):
        first.get(timeout=RESULT_TIMEOUT)
    (entry,) = [json.loads(e) for e in rclient.lrange(keys.dead_letters(queue), 0, -1)]
    assert entry["reason"] == "canvas_unsupported"
    assert "chord" in entry["error"]


# == Relier's native canvas ================================================================


def test_native_chain_group_and_chord_on_relier(
    start_worker: StartWorker, native: relier.App, rclient: redis.Redis,
    celery_app: Celery,
) -> None:
    queue = unique_queue("native")
    start_worker(RELIER_APP, queues=queue)
    add = interop_relier.add.s
    h = relier.chain(add(1, 1).set(queue=queue), add(3).set(queue=queue),
                     interop_relier.add.si(5, 5).set(queue=queue)).push()
    assert h.result(timeout=RESULT_TIMEOUT) == 10  # .si ignored the parent's 5
    g = relier.group(add(i, i).set(queue=queue) for i in range(4)).push()
    assert g.results(timeout=RESULT_TIMEOUT) == [0, 2, 4, 6]
    # Celery reads the group Relier saved, part by part.
    restored = GroupResult.restore(g.id, app=celery_app)
    assert restored is not None and restored.get(timeout=RESULT_TIMEOUT) == [0, 2, 4, 6]
    c = relier.chord([add(i, i).set(queue=queue) for i in range(10)],
                     interop_relier.tsum.s().set(queue=queue)).push()
    assert c.result(timeout=RESULT_TIMEOUT) == 90
    assert celery_app.AsyncResult(c.id).get(timeout=RESULT_TIMEOUT) == 90


async def test_native_apush_and_a_failing_chord_member(
    start_worker: StartWorker, native: relier.App, rclient: redis.Redis
) -> None:
    queue = unique_queue("native-fail")
    start_worker(RELIER_APP, queues=queue)
    h = await relier.chain(interop_relier.add.s(2, 2).set(queue=queue),
                           interop_relier.add.s(1).set(queue=queue)).apush()
    assert await h.aresult(timeout=RESULT_TIMEOUT) == 5
    record = interop_relier.record.s("chord failed").set(queue=queue)
    body = interop_relier.tsum.s().set(queue=queue, link_error=record)
    c = await relier.chord([interop_relier.add.s(1, 1).set(queue=queue),
                            interop_relier.fail.s("bad part").set(queue=queue)], body).apush()
    with pytest.raises(relier.TaskFailed, match="ChordError"):
        await c.aresult(timeout=RESULT_TIMEOUT)
    (errback,) = records(rclient, 1)
    assert errback["args"] == [c.id, "chord failed"]


def test_relier_chain_runs_on_a_celery_worker(
    start_celery: Any, redis_url: str, celery_app: Celery
) -> None:
    queue = unique_queue("r2c-chain")
    start_celery(queue)
    app = interop_relier.producer
    app.configure(redis_url=redis_url)
    try:
        mul = interop_relier.celery_mul.s
        h = relier.chain(mul(2, 3).set(queue=queue), mul(4).set(queue=queue),
                         mul(5).set(queue=queue)).push()
        assert h.result(timeout=RESULT_TIMEOUT) == 120
        assert celery_app.AsyncResult(h.id).get(timeout=RESULT_TIMEOUT) == 120
        c = relier.chord([mul(i, 1).set(queue=queue) for i in range(5)],
                         interop_relier.celery_tsum.s().set(queue=queue)).push()
        assert c.result(timeout=RESULT_TIMEOUT) == 10
    finally:
        app.close()


# == kill -9 in the middle of a chain ======================================================


def test_chain_survives_kill_9_with_no_step_enqueued_twice(
    start_worker: StartWorker, native: relier.App, rclient: redis.Redis
) -> None:
    queue = unique_queue("chain-kill")
    # re-queue too: a killed worker's message comes back there.
    first = start_worker(RELIER_APP, queues=f"{queue},re-queue", env=FAST)
    step = interop_relier.step.s
    h = relier.chain(step(1, 0).set(queue=queue), step(60).set(queue=queue),
                     step(0).set(queue=queue), step(0).set(queue=queue)).push()

    def runs() -> list[dict[str, Any]]:
        return [json.loads(r) for r in rclient.lrange(interop_relier.STEP_RUNS, 0, -1)]

    poll(lambda: len(runs()) >= 2, RESULT_TIMEOUT, "the second step to start")
    os.killpg(first.pid, signal.SIGKILL)
    first.wait()
    start_worker(RELIER_APP, queues=f"{queue},re-queue", env=FAST)
    assert h.result(timeout=RESULT_TIMEOUT) == 5
    seen = runs()
    by_id: dict[str, list[int]] = {}
    for run in seen:
        by_id.setdefault(run["id"], []).append(run["resurrections"])
    # Four steps; only the killed one ran twice, and its second run is the resurrection
    # (a second enqueue of any step would show up as another run with 0 resurrections).
    assert len(by_id) == 4
    assert sorted(by_id.values()) == [[0], [0], [0], [0, 1]]
