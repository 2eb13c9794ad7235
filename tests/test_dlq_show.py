"""`relier dlq show` shows what a replay decision needs: the arguments (decoded in --json
too), the traceback without Relier's own frames, and an id prefix is enough."""

from __future__ import annotations

import json

import pytest

from relier import TaskFailed
from relier.observability.dlq_view import fold_relier_frames
from relier.observability.id_prefix import resolve_prefix
from relier.protocol import dead_letter
from tests.conftest import StartWorker
from tests.taskapps import basic
from tests.test_dlq import relier

pytestmark = pytest.mark.usefixtures("basic_app")


@pytest.fixture
def failed_id(start_worker: StartWorker) -> str:
    start_worker("tests.taskapps.basic:app")
    handle = basic.fail.push(message="card declined")
    with pytest.raises(TaskFailed):
        handle.result(timeout=30)
    return handle.id


def test_show_prints_arguments_and_a_traceback_without_relier_frames(
    failed_id: str, redis_url: str,
) -> None:
    done = relier(redis_url, "dlq", "show", failed_id[:8])
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert f"task_id: {failed_id}" in lines
    assert 'kwargs: {"message":"card declined"}' in lines
    assert "args: []" in lines
    assert "raise ValueError(message, 42)" in done.stdout  # the task's own frame stays
    assert "/relier/runtime/" not in done.stdout
    assert "Relier frame(s) folded; --full-traceback shows them" in done.stdout
    full = relier(redis_url, "dlq", "show", failed_id, "--full-traceback")
    assert "/relier/runtime/" in full.stdout


def test_show_json_keeps_its_fields_and_adds_the_decoded_call(
    failed_id: str, redis_url: str,
) -> None:
    done = relier(redis_url, "dlq", "show", failed_id, "--json")
    entry = json.loads(done.stdout)
    listed = json.loads(relier(redis_url, "dlq", "list", "--json").stdout)[0]
    assert {k: entry[k] for k in listed} == listed  # every existing field, unchanged
    assert isinstance(entry["message"]["body"], str)  # still the envelope, base64 body
    assert entry["decoded"]["args"] == []
    assert entry["decoded"]["kwargs"] == {"message": "card declined"}
    assert dead_letter.decode(json.dumps(listed)).task_id == failed_id


def test_an_unknown_or_ambiguous_prefix_is_one_clear_line(redis_url: str) -> None:
    done = relier(redis_url, "dlq", "show", "zzz")
    assert done.returncode == 2
    assert done.stderr.strip() == ("error: no DLQ entry for task zzz: no task id starting "
                                   "with 'zzz' is running, dead-lettered or has a stored "
                                   "result")
    with pytest.raises(LookupError, match=r"'ab' is the start of 2 task ids"):
        resolve_prefix("ab", ["abc", "abd", "xyz"])
    assert resolve_prefix("abc", ["abc", "abcd"]) == "abc"


def test_folding_keeps_user_frames_and_counts_relier_ones() -> None:
    tb = ('Traceback (most recent call last):\n'
          '  File "/srv/relier/runtime/executor.py", line 9, in run\n'
          '    await call()\n'
          '  File "/srv/relier/runtime/deadlines.py", line 4, in call\n'
          '    return await fn()\n'
          '           ^^^^^^^^^^\n'
          '  File "/app/billing.py", line 3, in charge\n'
          '    raise ValueError("no")\n'
          'ValueError: no')
    assert fold_relier_frames(tb, root="/srv/relier").splitlines() == [
        "Traceback (most recent call last):",
        "  [... 2 Relier frame(s) folded; --full-traceback shows them]",
        '  File "/app/billing.py", line 3, in charge',
        '    raise ValueError("no")',
        "ValueError: no",
    ]
