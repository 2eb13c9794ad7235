"""A misconfigured Redis gets one line with a hint, from the CLI, the worker and push."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import pytest

from relier import App, ConfigurationError
from relier.embedded import EmbeddedServer
from tests.conftest import DATABASES

PASSWORD = "s3cret-pw"


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    import os

    return subprocess.run([sys.executable, "-m", "relier", *args], capture_output=True,
                          text=True, timeout=60, env={**os.environ, **(env or {})})


def assert_one_line(done: subprocess.CompletedProcess[str], *needles: str) -> str:
    assert done.returncode == 2, done
    # The worker's [tasks] banner may come first; the error itself is one line.
    lines = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, done.stderr
    assert "Traceback" not in done.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


@pytest.fixture(scope="module")
def locked_server() -> Iterator[EmbeddedServer]:
    with EmbeddedServer(extra_args=("--requirepass", PASSWORD)) as server:
        yield server


@pytest.mark.parametrize("url, found", [
    ("localhost:6379", "has no scheme"), ("http://localhost:6379", "has scheme 'http'")])
def test_a_url_without_redis_scheme_suggests_one(url: str, found: str) -> None:
    for args in (["queues"], ["worker"], ["doctor"]):
        done = run_cli(*args, env={"RELIER_REDIS_URL": url})
        assert_one_line(done, found, "did you mean redis://localhost:6379/0?")


def test_a_database_out_of_range_says_so(redis_url: str) -> None:
    url = redis_url.rsplit("/", 1)[0] + f"/{DATABASES + 5}"
    for args in (["queues"], ["worker", "-A", "tests.taskapps.basic:app"]):
        assert_one_line(run_cli(*args, "--redis-url", url),
                        f"has no database {DATABASES + 5}", "use /0 to")


def test_a_server_that_wants_a_password_says_where_to_put_it(
    locked_server: EmbeddedServer,
) -> None:
    line = assert_one_line(run_cli("queues", "--redis-url", locked_server.url),
                           "requires a password", "redis://:PASSWORD@127.0.0.1")
    assert "HELLO" not in line
    wrong = locked_server.url.replace("redis://", "redis://:nope@")
    line = assert_one_line(run_cli("worker", "-A", "tests.taskapps.basic:app",
                                   "--redis-url", wrong), "refused the password")
    assert "nope" not in line


def test_push_raises_one_clear_configuration_error(locked_server: EmbeddedServer,
                                                   redis_url: str) -> None:
    for url, needle in ((locked_server.url, "requires a password"),
                        (redis_url.rsplit("/", 1)[0] + f"/{DATABASES}", "has no database"),
                        ("localhost:6379", "did you mean redis://localhost:6379/0?")):
        app = App(redis_url=url)

        @app.task(name="config.noop")
        def noop() -> None: ...

        with pytest.raises(ConfigurationError, match=needle):
            noop.push()
        app.close()
    done = subprocess.run([sys.executable, "-c", (
        "from relier import App\napp = App(redis_url='http://localhost:6379')\n"
        "@app.task(name='t')\ndef t(): pass\nt.push()")], capture_output=True, text=True,
        timeout=60)
    # A library user gets the exception, whose last line says it all.
    assert done.stderr.strip().splitlines()[-1].startswith("relier.errors.ConfigurationError")
