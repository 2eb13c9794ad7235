"""The benchmark suite's quick mode, Relier and raw redis-py only, end to end.

It runs as a user would (`python -m benchmarks.run --quick`), on the private server the
benchmark starts for itself, and checks the JSON it writes: every workload measured,
the raw limits beside Relier's, the latency figures and the issue-14 targets judged.
No figure is compared with a speed: the machine may be busy.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def run_quick(tmp_path: Path) -> dict:  # type: ignore[type-arg]
    out = tmp_path / "bench.json"
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.run", "--quick", "--systems", "relier,raw",
         "--n", "1000", "--io-n", "500", "--apush-n", "1000", "--bulk-n", "5000",
         "--latency-n", "20", "--json", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=170)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Issue 14 targets" in done.stdout
    return json.loads(out.read_text())


@pytest.mark.timeout(180)  # a few worker start-ups on a machine that may be busy
def test_quick_run_measures_relier_against_the_raw_limits(tmp_path: Path) -> None:
    found = run_quick(tmp_path)
    rows = {row["workload"]: row for row in found["results"]}
    assert list(rows) == ["noop", "io", "push", "apush", "push_many"]
    for row in rows.values():
        assert row["rates"]["relier"] > 0
    for key in ("push", "apush", "push_many"):  # each compared with its raw limit
        assert rows[key]["rates"]["raw"] > 0
        assert rows[key]["ratios"]["relier/raw"] > 0
    noop_run = rows["noop"]["runs"]["relier"][0]
    assert noop_run["cpu_us_per_task"] > 0  # both worker processes' CPU was counted

    [relier] = found["latency"]
    assert relier["system"] == "relier" and relier["n"] == 20
    assert 0 < relier["p50_ms"] <= relier["p99_ms"]
    assert found["raw_round_trip_ms"]["p50_ms"] > 0

    judged = {t["name"]: t for t in found["targets"]}
    assert len(judged) == 6  # no peers in this run: the Celery/taskiq targets are left out
    assert all(isinstance(t["met"], bool) for t in judged.values())
    assert found["meta"]["load_average"] is not None


def test_unknown_system_is_one_clear_line() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.run", "--quick", "--systems", "relier,celry"],
        cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "unknown system celry; choose from relier,celery,taskiq,dramatiq,raw" in done.stderr
