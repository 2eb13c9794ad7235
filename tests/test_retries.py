"""Retries on real worker subprocesses: backoff through the delayed set, retry_on,
``raise relier.Retry(...)``, Celery's ``retries`` header, and the DLQ when they run out."""

from __future__ import annotations

import re

import pytest
import redis

from relier import Retry, TaskFailed
from relier.errors import ConfigurationError
from relier.protocol import dead_letter, results
from relier.runtime.retry import backoff_ceiling, backoff_delay
from relier.store import keys
from tests.conftest import StartWorker, WorkerProcess
from tests.polling import poll
from tests.taskapps import timeouts

APP = "tests.taskapps.timeouts:app"
#: How early a retry may start before its due time (the worker's eta tolerance).
EARLY = 0.05
#: How late a retry may start after its due time on a noisy machine (pump interval 0.2 s).
LATE = 5.0

pytestmark = pytest.mark.usefixtures("timeouts_app")


def attempts(client: redis.Redis, marker: str) -> list[tuple[str, int, float]]:
    """(task id, attempt, started at) of every run under the marker."""
    found = []
    for raw in client.lrange(timeouts.started_key(marker), 0, -1):
        task_id, attempt, at = raw.decode().split()
        found.append((task_id, int(attempt), float(at)))
    return found


def logged_delays(worker: WorkerProcess, task_id: str) -> list[float]:
    pattern = re.compile(re.escape(task_id) + r"\].*retrying in ([0-9.]+)s")
    return [float(m.group(1)) for m in pattern.finditer(worker.output)]


def dlq(client: redis.Redis) -> list[dead_letter.DeadLetter]:
    return [dead_letter.decode(raw) for raw in client.lrange(keys.dead_letters("default"), 0, -1)]


def test_failing_twice_then_succeeding_with_backoff(
    start_worker: StartWorker, rclient: redis.Redis
) -> None:
    worker = start_worker(APP)
    handle = timeouts.flaky.push("flaky", 2)  # retries=3, retry_backoff=1.0
    assert handle.result(timeout=60) == 3

    runs = attempts(rclient, "flaky")
    assert [(task_id, attempt) for task_id, attempt, _ in runs] == [
        (handle.id, 1), (handle.id, 2), (handle.id, 3)]
    delays = logged_delays(worker, handle.id)
    assert len(delays) == 2
    # Full jitter under 1 s * 2**(n-1): retry 1 waits in [0, 1], retry 2 in [0, 2].
    assert 0 <= delays[0] <= 1.0 and 0 <= delays[1] <= 2.0
    for (_, _, before), (_, _, after), delay in zip(runs, runs[1:], delays, strict=False):
        assert delay - EARLY <= after - before <= delay + LATE
    assert dlq(rclient) == []
    assert "attempt 1 of 4" in worker.output and "attempt 2 of 4" in worker.output


def test_always_failing_ends_in_the_dlq_after_three_retries(
    start_worker: StartWorker, rclient: redis.Redis
) -> None:
    start_worker(APP)
    handle = timeouts.always_fails.push("doomed")  # retries=3
    with pytest.raises(TaskFailed) as caught:
        handle.result(timeout=60)
    assert (caught.value.exc_type, caught.value.exc_message) == (
        "ValueError", ["attempt 4 failed"])

    assert [a for _, a, _ in attempts(rclient, "doomed")] == [1, 2, 3, 4]
    [entry] = dlq(rclient)
    assert (entry.task_id, entry.reason, entry.attempts) == (handle.id, "exception", 4)
    assert entry.error == "ValueError('attempt 4 failed')"
    assert entry.traceback is not None and "ValueError: attempt 4 failed" in entry.traceback
    # The message as its last attempt received it: Celery's retries header counted up,
    # parent_id pointing at itself, as a Celery worker republishes a retry.
    headers = entry.message["headers"]
    assert (headers["retries"], headers["parent_id"]) == (3, handle.id)
    assert rclient.zcard(keys.delayed("default")) == 0


def test_retry_on_limits_what_is_retried(
    start_worker: StartWorker, rclient: redis.Redis
) -> None:
    start_worker(APP)
    handle = timeouts.picky.push("picky")  # retry_on=(ConnectionError,), raises KeyError
    with pytest.raises(TaskFailed) as caught:
        handle.result(timeout=30)
    assert caught.value.exc_type == "KeyError"
    assert len(attempts(rclient, "picky")) == 1
    [entry] = dlq(rclient)
    assert (entry.reason, entry.attempts) == ("exception", 1)


def test_raise_retry_waits_its_countdown_and_shows_the_retry_state(
    start_worker: StartWorker, rclient: redis.Redis
) -> None:
    start_worker(APP)
    handle = timeouts.asks_retry.push("asks", 2.0)
    # While the retry waits in the delayed set, the result reads RETRY, as in Celery.
    poll(lambda: handle.status() == "RETRY", 30, "the RETRY state")
    stored = results.decode(rclient.get(keys.result(handle.id)))
    assert stored.result["exc_type"] == "Retry"
    assert rclient.zcard(keys.delayed("default")) == 1
    assert handle.result(timeout=30) == 2
    first, second = attempts(rclient, "asks")
    assert 2.0 - EARLY <= second[2] - first[2] <= 2.0 + LATE


def test_retry_requests_beyond_the_limit_are_dead_lettered(
    start_worker: StartWorker, rclient: redis.Redis
) -> None:
    start_worker(APP)
    handle = timeouts.always_asks_retry.push("asks-always")  # retries=1
    with pytest.raises(TaskFailed) as caught:
        handle.result(timeout=30)
    assert (caught.value.exc_type, caught.value.exc_module) == (
        "MaxRetriesExceededError", "celery.exceptions")
    [entry] = dlq(rclient)
    assert (entry.reason, entry.attempts) == ("exception", 2)


def test_retry_may_set_its_own_limit(start_worker: StartWorker, rclient: redis.Redis) -> None:
    start_worker(APP)
    assert timeouts.retries_itself.push("own-limit").result(timeout=30) == 3
    assert len(attempts(rclient, "own-limit")) == 3


def test_an_idempotent_call_stays_one_call_across_its_retries(
    start_worker: StartWorker, rclient: redis.Redis
) -> None:
    start_worker(APP)
    handle = timeouts.idempotent_flaky.push("idem-retry")
    assert handle.result(timeout=30) == 2
    # Dispatched again after its retry succeeded: the same call, answered from its record.
    again = timeouts.idempotent_flaky.push("idem-retry")
    assert again.id == handle.id
    assert again.result(timeout=30) == 2
    assert [a for _, a, _ in attempts(rclient, "idem-retry")] == [1, 2]


# -- the backoff formula and option checks (no worker needed) ----------------------------


def test_backoff_is_full_jitter_under_an_exponential_ceiling_with_a_cap() -> None:
    assert [backoff_ceiling(n, 0.5, 3.0) for n in range(1, 6)] == [0.5, 1.0, 2.0, 3.0, 3.0]
    assert backoff_ceiling(10_000, 1.0, 600.0) == 600.0  # no overflow
    for n in range(1, 8):
        draws = [backoff_delay(n, 0.5, 3.0) for _ in range(200)]
        ceiling = backoff_ceiling(n, 0.5, 3.0)
        assert all(0 <= d <= ceiling for d in draws)
        assert max(draws) > ceiling / 2 > min(draws)  # spread over the range, not fixed


def test_bad_options_are_refused_when_the_task_is_defined() -> None:
    with pytest.raises(ConfigurationError, match=r"soft_timeout .* below hard_timeout"):
        timeouts.app.task(name="bad.limits", soft_timeout=5, hard_timeout=2)(timeouts.add.fn)
    with pytest.raises(ConfigurationError, match="hard_timeout must be > 0"):
        timeouts.app.task(name="bad.hard", hard_timeout=0)(timeouts.add.fn)
    with pytest.raises(ConfigurationError, match="retries must be an int >= 0"):
        timeouts.app.task(name="bad.retries", retries=-1)(timeouts.add.fn)
    with pytest.raises(ConfigurationError, match="retry_on must be a tuple"):
        timeouts.app.task(name="bad.retry_on", retry_on=("ValueError",))(timeouts.add.fn)
    with pytest.raises(ConfigurationError, match="below hard_timeout"):
        timeouts.hang.options(soft_timeout=2.0)  # the task's hard timeout is 1.5 s
    with pytest.raises(ValueError, match="countdown must be >= 0"):
        Retry(countdown=-1)
    assert "bad.limits" not in timeouts.app.tasks
