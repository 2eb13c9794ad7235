"""A worker says what it runs: the [tasks] banner, a warning when it has none, and one
explained line for the first message of a task it does not know."""

from __future__ import annotations

import re

import pytest

from relier import App, ResultTimeout
from tests.conftest import StartWorker
from tests.polling import poll


def test_the_banner_lists_every_registered_task(start_worker: StartWorker) -> None:
    worker = start_worker("tests.taskapps.basic:app")
    worker.wait_for_line("[tasks]")
    lines = worker.output.splitlines()
    start = next(i for i, line in enumerate(lines) if "[tasks]" in line)
    listed = [line.split()[1] for line in lines[start + 1:] if line.startswith("  . ")]
    assert {"basic.add", "basic.sync_add", "basic.fail"} <= set(listed)
    assert "  . basic.add  (queue=default)" in lines


@pytest.mark.parametrize("target, needle", [
    ("tests.taskapps.empty", "-A tests.taskapps.empty registered no tasks"),
])
def test_a_module_without_tasks_is_a_warning(start_worker: StartWorker, target: str,
                                              needle: str) -> None:
    worker = start_worker(target)
    line = worker.wait_for_line(needle)
    assert "WARNING" in line and "@rl_task" in line


def test_unknown_task_is_explained_once_per_name(
    start_worker: StartWorker, redis_url: str,
) -> None:
    worker = start_worker("tests.taskapps.basic:app")
    caller = App(redis_url=redis_url)

    @caller.task(name="elsewhere.report")
    def report(n: int) -> None: ...

    first, second = report.push(1), report.push(2)
    with pytest.raises(ResultTimeout, match=f"relier inspect task {first.id}"):
        first.result(timeout=0.5)
    # Each message is deferred again with backoff (1 s, 2 s...): wait for repeats.
    poll(lambda: sum("deferring" in line for line in worker.output.splitlines()) >= 3,
         timeout=30, what="repeated deferrals")
    explained = [line for line in worker.output.splitlines()
                 if "no task named 'elsewhere.report'" in line and "WARNING" in line]
    assert len(explained) == 1, worker.output
    assert "this worker registers: basic.add" in explained[0]
    assert "start one with -A" in explained[0]
    assert first.id in explained[0] or second.id in explained[0]
    caller.close()


@pytest.mark.usefixtures("timeouts_app")
def test_one_line_per_retry_with_its_real_delay(start_worker: StartWorker) -> None:
    from tests.taskapps import timeouts

    worker = start_worker("tests.taskapps.timeouts:app", "--log-level", "info")
    handle = timeouts.flaky.push("banner-flaky", 1)  # fails once, then succeeds
    assert handle.result(timeout=60) == 2
    worker.wait_for_line(f"{handle.id}] success")
    mine = [line for line in worker.output.splitlines() if handle.id in line]
    assert len(mine) == 2, mine  # the retry with its delay, then the success
    assert re.search(r"failed after [0-9.]+s \(attempt 1 of 4\).*; retrying in [0-9.]+s",
                     mine[0]), mine[0]
    assert "success" in mine[1]


def test_an_invalid_payload_is_one_line(start_worker: StartWorker, redis_url: str) -> None:
    worker = start_worker("tests.taskapps.basic:app")
    caller = App(redis_url=redis_url)

    @caller.task(name="basic.add")  # the same name, an older signature: strings, not ints
    def add(x: str, y: str) -> None: ...

    handle = add.push("two", "three")
    worker.wait_for_line(f"{handle.id}] has invalid arguments")
    # The outcome line for it comes right after, at debug level: wait for it, then count.
    worker.wait_for_line(f"{handle.id}] payload_invalid")
    mine = [line for line in worker.output.splitlines()
            if handle.id in line and " DEBUG " not in line]
    assert len(mine) == 1, mine
    assert "ERROR" in mine[0] and "has invalid arguments" in mine[0]
    caller.close()
