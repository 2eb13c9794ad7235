"""The narrated demo: a private server, two workers, a mixed batch, a kill -9, the DLQ.

Everything it starts (the server, the worker processes) is stopped before it returns,
whatever happens in between.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

import redis
from rich.console import Console

from relier.broker import as_bytes
from relier.demo import admission, payments, tasks
from relier.demo.timeouts import show_timeouts
from relier.dlq import DeadLetterQueue
from relier.embedded import EmbeddedServer
from relier.errors import ConfigurationError, TaskFailed
from relier.observability.render import dlq_table

console = Console(highlight=False)
TASKS = "relier.demo.tasks:app,relier.demo.timeouts"


class DemoWorker:
    """A `relier worker` subprocess whose log goes to a file (the narration is ours)."""

    def __init__(self, name: str, url: str, log_dir: str) -> None:
        self.name = name
        self.log_path = os.path.join(log_dir, f"worker-{name}.log")
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "relier", "worker", "-A", TASKS, "--redis-url", url,
             "--concurrency", "20"],
            stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        self.id = ""

    def wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with open(self.log_path, encoding="utf-8", errors="replace") as log:
                for line in log:
                    if "consuming" in line:
                        self.id = line.split("worker ", 1)[1].split()[0]
                        return
            if self.process.poll() is not None:
                break
            time.sleep(0.05)
        raise ConfigurationError(f"worker {self.name} did not start; see {self.log_path}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()


@contextmanager
def _workers(url: str, log_dir: str, names: list[str]) -> Iterator[list[DemoWorker]]:
    started: list[DemoWorker] = []
    try:
        for name in names:
            started.append(DemoWorker(name, url, log_dir))
        for worker in started:
            worker.wait_ready()
        yield started
    finally:
        for worker in started:
            worker.stop()


def task_starts(client: redis.Redis, task_id: str) -> list[tuple[str, float]]:
    found = []
    for raw in client.lrange(tasks.STARTED, 0, -1):
        tid, worker, at = as_bytes(raw).decode().split()
        if tid == task_id:
            found.append((worker, float(at)))
    return found


def wait_until(condition: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise ConfigurationError(f"demo: timed out waiting for {what}")
        time.sleep(0.05)


def _mixed_batch(client: redis.Redis) -> None:
    console.rule("a mixed batch: async, sync, and one that fails")
    quotes = tasks.fetch_quote.push_many([(("RLR",), {}), (("CELERY",), {})])
    resize = tasks.resize_image.push("cat.png", 640)
    charge = tasks.charge_card.push("cus_42", 5000)
    for handle in quotes:
        console.print(f"  fetch_quote   {handle.id[:8]} -> {handle.result(timeout=10)}")
    console.print(f"  resize_image  {resize.id[:8]} -> {resize.result(timeout=10)}")
    try:
        charge.result(timeout=10)
    except TaskFailed as exc:
        console.print(f"  charge_card   {charge.id[:8]} -> [red]TaskFailed[/red]: "
                      f"{exc.exc_type}: {exc.exc_message[0]}")


def _phoenix(client: redis.Redis, workers: list[DemoWorker]) -> None:
    console.rule("Phoenix: kill -9 a worker in the middle of a task")
    report = tasks.nightly_report.push(4.0)
    wait_until(lambda: task_starts(client, report.id), 10, "the report to start")
    first_worker, _ = task_starts(client, report.id)[0]
    victim = next(w for w in workers if w.id == first_worker)
    console.print(f"  nightly_report {report.id[:8]} started on worker {victim.name}")
    victim.process.send_signal(signal.SIGKILL)
    killed_at = time.time()
    console.print(f"  [bold red]kill -9[/bold red] worker {victim.name} (pid {victim.process.pid})")
    with console.status("  waiting for Phoenix (default settings: heartbeat TTL 6 s)..."):
        wait_until(lambda: len(task_starts(client, report.id)) >= 2, 30, "the resurrection")
    rescuer_id, restarted_at = task_starts(client, report.id)[1]
    rescuer = next(w for w in workers if w.id == rescuer_id)
    console.print(f"  resurrected on worker {rescuer.name} "
                  f"[bold green]{restarted_at - killed_at:.1f} s[/bold green] after the kill")
    console.print(f"  result: {report.result(timeout=30)}")


def run_demo(*, keep_server: bool = False) -> None:
    """Run the whole demo; raises ConfigurationError if a step cannot complete."""
    started = time.monotonic()
    server = EmbeddedServer(prefer_valkey=True).start()
    console.print(f"[bold]relier demo[/bold]: private server {os.path.basename(server.binary)} "
                  f"on {server.url}")
    client = redis.Redis.from_url(server.url)
    tasks.app.configure(redis_url=server.url)
    try:
        with _workers(server.url, str(server.directory), ["A", "B"]) as workers:
            console.print("  two workers running: " +
                          ", ".join(f"{w.name} = {w.id}" for w in workers))
            _mixed_batch(client)
            payments.double_click(console, client)
            admission.overfull_queue(console, client)
            _phoenix(client, workers)
            show_timeouts(client, console)
            from relier.demo.deploys import rolling_deploy  # it imports this module

            rolling_deploy(server.url, str(server.directory), console)
            console.rule("the dead-letter queue")
            dlq_table(DeadLetterQueue(client).entries(), console)
            _dlq_advice(server.url, keep_server)
    finally:
        client.close()
        tasks.app.close()
        if keep_server and server.process is not None:
            console.print(f"  the server is still running on {server.url} (pid "
                          f"{server.process.pid}); stop it with: kill {server.process.pid}",
                          soft_wrap=True)
        else:
            server.close()
    stopped = "the server keeps running" if keep_server else "every process stopped"
    console.rule(f"done in {time.monotonic() - started:.1f} s; {stopped}")


def _dlq_advice(url: str, keep_server: bool) -> None:
    """Commands that work after the demo: with ``--keep-server`` the entries are still
    there to replay; without it the server is about to go, so say how to keep it."""
    # soft_wrap: a command is never broken by an inserted newline, so it pastes whole.
    if keep_server:
        console.print(f"  look closer: relier dlq show <task id> --redis-url {url}",
                      soft_wrap=True)
        console.print(f"  replay one:  relier dlq replay <task id> --redis-url {url}",
                      soft_wrap=True)
    else:
        console.print("  this server stops now; to look at these entries and replay them "
                      "after the demo, run it as:")
        console.print("    relier demo --keep-server", soft_wrap=True)
