"""The `relier` command follows the conventions a Celery user brings: --version, -l,
plain help, a hint after the first Ctrl-C, a purge that says what it keeps, and a doctor
that does not fail an ordinary development Redis."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import pytest

from tests.conftest import StartWorker
from tests.taskapps import basic


def relier(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "relier", *args], capture_output=True,
                          text=True, timeout=60, input=stdin,
                          env={**os.environ, "COLUMNS": "120"})


def test_version() -> None:
    for flag in ("--version", "-V"):
        done = relier(flag)
        assert done.returncode == 0
        assert done.stdout.startswith("relier 0.") and "Python 3." in done.stdout


def test_help_shows_no_bool_labels_and_plain_argument_names() -> None:
    worker_help = relier("worker", "--help").stdout
    assert "<bool>" not in worker_help
    assert "-l, --loglevel" in worker_help or "--loglevel" in worker_help
    assert "Tasks run at once by each worker process" in worker_help
    purge_help = relier("purge", "--help").stdout
    assert "purge [OPTIONS] QUEUE" in purge_help
    assert "{queue}" not in purge_help and "<bool>" not in purge_help


@pytest.mark.usefixtures("basic_app")
def test_loglevel_short_option_and_the_ctrl_c_hint(start_worker: StartWorker) -> None:
    worker = start_worker("tests.taskapps.basic:app", "-l", "info")
    assert basic.add.push(1, 2).result(timeout=30) == 3  # running: its signal watch is on
    worker.signal(signal.SIGINT)
    line = worker.wait_for_line("SIGINT: stopping")
    assert line.endswith("press Ctrl-C again to stop now"), line
    assert worker.wait() == 0
    assert " DEBUG " not in worker.output  # -l info took effect


@pytest.mark.usefixtures("basic_app")
def test_purge_says_what_it_keeps_and_knows_its_queues(redis_url: str) -> None:
    basic.add.push(1, 2)
    basic.add.options(eta=datetime.now(UTC) + timedelta(hours=1)).push(3, 4)
    asked = relier("purge", "default", "--redis-url", redis_url, stdin="n\n")
    assert asked.returncode == 1
    assert ("delete 1 message(s) waiting in 'default' (1 delayed message(s) are kept; "
            "--delayed drops them too)?") in asked.stdout
    unknown = relier("purge", "nosuchqueue", "--redis-url", redis_url)
    assert unknown.returncode == 2
    assert unknown.stderr.strip().startswith("error: unknown queue 'nosuchqueue'; known "
                                             "queues: default")
    typo = relier("purge", "defualt", "--redis-url", redis_url)
    assert "(did you mean 'default'?)" in typo.stderr


def test_doctor_passes_a_development_redis_with_warnings(redis_url: str) -> None:
    # The test server keeps no persistence and runs no worker: ordinary in development.
    done = relier("doctor", "--redis-url", redis_url)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "warn  persistence" in done.stdout
    assert "warning(s): fine for development; read them before production" in done.stdout
    report = json.loads(relier("doctor", "--json", "--redis-url", redis_url).stdout)
    assert report["problems"] == [] and report["healthy"] is False  # fields kept, one added
