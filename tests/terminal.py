"""A real terminal for the view tests: a private tmux server with one pane of a given
size, commands typed into it and the screen read back (``capture-pane``)."""

from __future__ import annotations

import os
import shlex
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager

from tests.polling import poll


class Terminal:
    """One tmux pane running ``sh``, ``width`` x ``height`` characters."""

    def __init__(self, width: int, height: int) -> None:
        # A socket of our own: other sessions on this machine are never touched.
        self.socket = f"relier-test-{os.getpid()}-{time.monotonic_ns()}"
        self.width, self.height = width, height
        env = {**os.environ, "TERM": "xterm-256color", "PS1": "$ "}
        env.pop("COLUMNS", None)
        env.pop("LINES", None)
        self._tmux("new-session", "-d", "-s", "t", "-x", str(width), "-y", str(height),
                   "sh", env=env)

    def _tmux(self, *args: str, env: dict[str, str] | None = None) -> str:
        done = subprocess.run(["tmux", "-L", self.socket, *args], capture_output=True,
                              text=True, timeout=30, env=env, check=True)
        return done.stdout

    def run(self, *argv: str) -> None:
        """Type a command (after clearing the screen) and press Enter."""
        self._tmux("send-keys", "-t", "t", f"clear; {shlex.join(argv)}", "Enter")

    def keys(self, *keys: str) -> None:
        self._tmux("send-keys", "-t", "t", *keys)

    def screen(self) -> list[str]:
        return self._tmux("capture-pane", "-p", "-t", "t").splitlines()

    def wait_for(self, text: str, timeout: float = 60) -> list[str]:
        """The screen, once it shows ``text``."""
        return poll(lambda: (lines := self.screen()) and any(text in ln for ln in lines)
                    and lines, timeout, f"{text!r} on the {self.width}x{self.height} screen")

    def close(self) -> None:
        subprocess.run(["tmux", "-L", self.socket, "kill-server"], capture_output=True,
                       timeout=30)


@contextmanager
def terminal(width: int, height: int) -> Iterator[Terminal]:
    term = Terminal(width, height)
    try:
        yield term
    finally:
        term.close()
