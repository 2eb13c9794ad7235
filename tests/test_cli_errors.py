"""Bad input gets one clear line, not a traceback wall."""

from __future__ import annotations

import subprocess
import sys

import pytest

from relier import App, BrokerUnavailable
from relier.embedded import free_port


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "relier", *args],
                          capture_output=True, text=True, timeout=60)


def test_unknown_app_module_is_named() -> None:
    done = run_cli("worker", "-A", "no_such_module_here")
    assert done.returncode == 2
    assert "cannot import 'no_such_module_here'" in done.stderr
    assert "Traceback" not in done.stderr


def test_unreachable_redis_names_the_url_without_password() -> None:
    url = f"redis://:hunter2@127.0.0.1:{free_port()}/0"
    done = run_cli("worker", "-A", "tests.taskapps.basic:app", "--redis-url", url)
    assert done.returncode == 2
    assert f"cannot reach Redis at redis://:***@127.0.0.1:{url.split(':')[3]}" in done.stderr
    assert "hunter2" not in done.stderr
    assert "Traceback" not in done.stderr


async def test_push_to_unreachable_redis_raises_broker_unavailable() -> None:
    app = App(redis_url=f"redis://127.0.0.1:{free_port()}/0")

    @app.task(name="cli.noop")
    async def noop() -> None: ...

    with pytest.raises(BrokerUnavailable, match=r"cannot reach Redis at redis://127\.0\.0\.1"):
        noop.push()
    with pytest.raises(BrokerUnavailable):
        await noop.apush()
    await app.aclose()
    app.close()
