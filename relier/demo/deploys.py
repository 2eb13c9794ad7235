"""The demo's rolling-deploy scene: an old worker defers a payload from a newer release,
a new worker takes over and runs it, and an old payload is upgraded on the new worker.

The scene runs its own two workers (the old release, relier.demo.invoices_v1, and the new
one, invoices_v2) on its own queue, and stops them before it returns.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from rich.console import Console

from relier.demo import invoices_v1, invoices_v2
from relier.demo.runner import DemoWorker, wait_until
from relier.protocol import message as wire
from relier.store import clients, lanes
from relier.store.clients import SyncClient

OLD = "relier.demo.invoices_v1:app"
NEW = "relier.demo.invoices_v2:app"


class _ReleaseWorker(DemoWorker):
    """A demo worker running one release of the invoice task, on the scene's queue."""

    def __init__(self, name: str, app: str, url: str, log_dir: str) -> None:
        # Same as DemoWorker, with another -A and -Q.
        self.name = name
        self.log_path = os.path.join(log_dir, f"worker-{name}.log")
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "relier", "worker", "-A", app, "--redis-url", url,
             "-Q", invoices_v1.QUEUE, "--concurrency", "5"],
            stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        self.id = ""


def _deferred(client: SyncClient, task_id: str) -> bool:
    """Whether the message waits in its queue's deferred set (for a capable worker)."""
    for raw in lanes.deferred_sync(client, queue=invoices_v1.QUEUE):
        message = wire.peek(raw)
        if message is not None and message.id == task_id:
            return True
    return False


def rolling_deploy(url: str, log_dir: str, console: Console) -> None:
    """Play the scene against the server at ``url``."""
    console.rule("a rolling deploy: the new release's payload reaches an old worker")
    client = clients.sync_client(url)
    for app in (invoices_v1.app, invoices_v2.app):
        app.configure(redis_url=url)
    workers: list[_ReleaseWorker] = []
    try:
        old = _ReleaseWorker("old", OLD, url, log_dir)
        workers.append(old)
        old.wait_ready()
        console.print("  worker [bold]old[/bold] runs send_invoice version 1 "
                      "(amount_cents: int)")
        handle = invoices_v2.send_invoice.push("cus_42", invoices_v2.Money(1999, "EUR"))
        console.print(f"  a new producer pushes version 2 {handle.id[:8]} (amount: Money)")
        with console.status("  the old worker cannot run it; it defers it..."):
            wait_until(lambda: _deferred(client, handle.id), 20, "the deferral")
        console.print("  old deferred it for a worker that can run it: "
                      "[bold]not run, not dead-lettered[/bold]")

        new = _ReleaseWorker("new", NEW, url, log_dir)
        workers.append(new)
        new.wait_ready()
        ready_at = time.monotonic()
        console.print("  deploy: worker [bold]new[/bold] (version 2) is up; old keeps running")
        names = {w.id: w.name for w in workers}
        with console.status("  the new worker takes the deferred message..."):
            done = handle.result(timeout=60)
        console.print(f"  {names.get(done['worker'], done['worker'])} took it at start and "
                      f"ran it ({time.monotonic() - ready_at:.1f} s after its ready line): "
                      f"[bold green]{done['invoice']}[/bold green]")
        console.print("  the deploy ends: SIGTERM to old")
        old.process.send_signal(signal.SIGTERM)

        upgraded = invoices_v1.send_invoice.push("cus_7", 2500)
        done = upgraded.result(timeout=30)
        console.print(f"  an old producer pushes version 1 {upgraded.id[:8]} (2500 cents);")
        console.print(f"  {names.get(done['worker'], done['worker'])} upgrades it to Money "
                      f"and runs it: [bold green]{done['invoice']}[/bold green]")
    finally:
        for worker in workers:
            worker.stop()
        for app in (invoices_v1.app, invoices_v2.app):
            app.close()
        client.close()
