"""`relier top`, `inspect`, `inspect task` and `dlq list` in a real terminal at 80x24 and
120x40: nothing wider than the screen, queue names never split, whole ids where they fit
and id prefixes (which the commands accept) where they do not."""

from __future__ import annotations

import re
import shutil
import sys
from collections.abc import Iterator

import pytest

from relier import TaskFailed
from relier.observability.render import ID_PREFIX
from tests.conftest import StartWorker
from tests.polling import poll
from tests.taskapps import basic
from tests.terminal import Terminal, terminal

pytestmark = [pytest.mark.usefixtures("basic_app"),
              pytest.mark.skipif(shutil.which("tmux") is None, reason="needs tmux")]

QUEUES = "default,re-queue,payments-high-priority"
RUNNING = 8


@pytest.fixture
def busy(start_worker: StartWorker, redis_url: str) -> Iterator[dict[str, list[str]]]:
    """A worker running RUNNING long tasks, and one dead letter."""
    start_worker("tests.taskapps.basic:app", "--concurrency", "20", queues=QUEUES)
    failed = basic.fail.options(queue="payments-high-priority").push("declined")
    with pytest.raises(TaskFailed):
        failed.result(timeout=30)
    handles = basic.sleep.push_many([((120,), {}) for _ in range(RUNNING)])
    from relier.observability.inspect import Inspector
    inspector = Inspector(basic.app.sync_client())
    poll(lambda: len(inspector.snapshot().running) == RUNNING, 30, "all tasks running")
    yield {"running": [h.id for h in handles], "dead": [failed.id]}


def relier(redis_url: str, *args: str) -> list[str]:
    return [sys.executable, "-m", "relier", *args, "--redis-url", redis_url]


def assert_fits(lines: list[str], width: int) -> None:
    assert all(len(line) <= width for line in lines), "\n".join(lines)
    text = "\n".join(lines)
    for queue in QUEUES.split(","):
        # Each queue name is whole wherever it shows: never cut across two lines.
        assert not any(line.rstrip().endswith(queue[:-3]) for line in lines), text
    assert "payments-high-priority" in text and "re-queue" in text


def shown_ids(lines: list[str], ids: list[str]) -> set[str]:
    return {i for i in ids if any(i[:ID_PREFIX] in line for line in lines)}


def test_top_at_80x24_fits_the_screen_and_shows_running_rows(
    busy: dict[str, list[str]], redis_url: str,
) -> None:
    with terminal(80, 24) as term:
        term.run(*relier(redis_url, "top", "--interval", "0.5"))
        lines = term.wait_for("running (8")
        assert_fits(lines, 80)
        rows = shown_ids(lines, busy["running"])
        assert len(rows) >= 3, "\n".join(lines)  # not cut after one row
        title = next(line for line in lines if "running (8" in line)
        assert len(rows) == RUNNING or f"longest {len(rows)}" in title, "\n".join(lines)
        assert not any(i in "\n".join(lines) for i in busy["running"])  # prefixes only
        term.keys("C-c")
        term.run("echo", "top-ended")  # typed after top gave the terminal back
        term.wait_for("top-ended")


def test_inspect_and_a_prefix_at_80_columns(busy: dict[str, list[str]], redis_url: str) -> None:
    with terminal(80, 24) as term:
        term.run(*relier(redis_url, "inspect"))
        lines = term.wait_for("running (8")
        assert_fits(lines, 80)
        assert "attempt" in "\n".join(lines) and "(+" not in "\n".join(lines)
        prefix = busy["running"][0][:ID_PREFIX]
        term.run(*relier(redis_url, "inspect", "task", prefix))
        lines = term.wait_for("running on")
        assert busy["running"][0] in "\n".join(lines)
        where = next(line for line in lines if "running on" in line)
        # The time carries its zone: "running on W since 2026-11-30 04:21:07 UTC".
        assert re.search(r"since \d{4}-\d\d-\d\d \d\d:\d\d:\d\d [A-Z][A-Za-z+\-0-9]*$",
                         where.rstrip()), where
        assert all(len(line) <= 80 for line in lines)


def test_dlq_list_at_80_columns_is_two_whole_lines_per_entry(
    busy: dict[str, list[str]], redis_url: str,
) -> None:
    with terminal(80, 24) as term:
        term.run(*relier(redis_url, "dlq", "list"))
        lines = term.wait_for("ValueError")
        assert all(len(line) <= 80 for line in lines)
        dead = busy["dead"][0]
        entry = next(i for i, line in enumerate(lines) if line.startswith(dead[:ID_PREFIX]))
        assert "payments-high-priority  exception  tries 1" in lines[entry]
        assert "ValueError" in lines[entry + 1]
        term.run(*relier(redis_url, "dlq", "show", dead[:ID_PREFIX]))
        assert dead in "\n".join(term.wait_for("kwargs"))


def test_120x40_shows_whole_ids_in_bordered_tables(busy: dict[str, list[str]],
                                                  redis_url: str) -> None:
    with terminal(120, 40) as term:
        term.run(*relier(redis_url, "top", "--interval", "0.5"))
        lines = term.wait_for("running (8")
        assert_fits(lines, 120)
        text = "\n".join(lines)
        assert sum(i in text for i in busy["running"]) == RUNNING  # all of them, whole
        term.keys("C-c")
        term.run(*relier(redis_url, "dlq", "list"))
        assert busy["dead"][0] in "\n".join(term.wait_for("ValueError"))


def test_the_screen_is_really_that_size() -> None:
    with terminal(80, 24) as term:
        term.run("stty", "size")
        assert "24 80" in "\n".join(term.wait_for("24 80"))
    assert isinstance(term, Terminal)
