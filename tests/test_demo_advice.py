"""The demo's closing advice can be followed: with --keep-server the server stays up, its
URL is printed, and the printed commands work on it. Also: pyproject.toml cites no file
that the repository lacks."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys

from tests.conftest import ROOT


def relier(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "relier", *args], capture_output=True,
                          text=True, timeout=timeout, cwd=ROOT,
                          env={**os.environ, "COLUMNS": "100"})


def test_demo_keep_server_prints_commands_that_work() -> None:
    done = relier("demo", "--keep-server", timeout=600)
    out = done.stdout
    pid_match = re.search(r"stop it with: kill (\d+)", out)
    try:
        assert done.returncode == 0, out + done.stderr
        assert pid_match, out
        url = re.search(r"replay one:  relier dlq replay <task id> --redis-url (\S+)",
                        out).group(1)  # type: ignore[union-attr]
        assert re.search(r"\d+ accepted, \d+ refused because the queue was full", out), out
        assert "the server keeps running" in out
        entries = json.loads(relier("dlq", "list", "--json", "--redis-url", url).stdout)
        assert entries, "the demo leaves dead letters to look at"
        prefix = entries[0]["task_id"][:8]
        replayed = relier("dlq", "replay", prefix, "--redis-url", url)
        assert replayed.returncode == 0, replayed.stderr
        assert entries[0]["task_id"] in replayed.stdout
    finally:
        if pid_match:
            os.kill(int(pid_match.group(1)), signal.SIGTERM)


def test_without_keep_server_the_advice_says_how_to_keep_it() -> None:
    from relier.demo import runner

    with runner.console.capture() as captured:
        runner._dlq_advice("redis://127.0.0.1:1/0", keep_server=False)
    assert "relier demo --keep-server" in captured.get()
    assert "relier dlq replay <task id>" not in captured.get()


def test_pyproject_cites_only_files_that_exist() -> None:
    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    for name in set(re.findall(r"[\w./-]+\.md\b", text)):
        assert (ROOT / name).exists() or any(ROOT.rglob(name)), f"pyproject cites {name}"
