"""One log line per task outcome, as text or JSON, with id, name, attempt and duration."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from relier import TaskFailed
from tests.conftest import StartWorker
from tests.taskapps import observe

APP = "tests.taskapps.observe:app"

pytestmark = pytest.mark.usefixtures("observe_app")


def test_json_outcome_lines(start_worker: StartWorker) -> None:
    worker = start_worker(APP, "--log-format", "json")
    good, bad = observe.ok.push(1), observe.boom.push("bad input")
    assert good.result(timeout=10) == 1
    with pytest.raises(TaskFailed):
        bad.result(timeout=10)
    worker.wait_for_line('"outcome": "failure"')
    records = [json.loads(line) for line in worker.lines if line.startswith("{")]
    outcomes = {r["task_id"]: r for r in records if "outcome" in r}
    assert len([r for r in records if r.get("task_id") == good.id and "outcome" in r]) == 1
    ok, failed = outcomes[good.id], outcomes[bad.id]
    assert (ok["task"], ok["attempt"], ok["outcome"], ok["queue"], ok["level"]) == (
        "observe.ok", 1, "success", "default", "info")
    assert 0 <= ok["duration"] < 10 and ok["worker"]
    assert (failed["outcome"], failed["level"]) == ("failure", "warning")
    assert "RuntimeError('bad input')" in failed["error"]


def test_text_outcome_line_and_log_level(start_worker: StartWorker) -> None:
    quiet = start_worker(APP, "--log-level", "warning", wait_ready=False)
    assert observe.ok.push(2).result(timeout=30) == 2
    bad = observe.boom.push("loud")
    with pytest.raises(TaskFailed):
        bad.result(timeout=10)
    line = quiet.wait_for_line(f"observe.boom[{bad.id}] failure in ")
    assert "(attempt 1, queue default): RuntimeError('loud')" in line
    assert " success in " not in quiet.output  # info lines are below the level


def test_bad_log_options_are_one_clear_line() -> None:
    for args, message in ((["--log-level", "chatty"], "--log-level must be one of"),
                          (["--log-format", "xml"], "--log-format must be text or json")):
        done = subprocess.run([sys.executable, "-m", "relier", "worker", "-A", APP, *args],
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 2 and message in done.stderr
        assert "Traceback" not in done.stderr
