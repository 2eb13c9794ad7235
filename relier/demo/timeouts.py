"""The demo's timeout scene: a hung task's soft-timeout hook fires, then its hard timeout
cancels it and dead-letters it; a flaky task succeeds on its third attempt.

Its tasks register with the demo App, so the demo's workers run them
(``-A relier.demo.tasks:app,relier.demo.timeouts``).
"""

from __future__ import annotations

import asyncio
import itertools
import os
import time

from rich.console import Console

from relier import TaskContext, TaskFailed, current_task
from relier.demo.tasks import app
from relier.dlq import DeadLetterQueue, Filter
from relier.errors import ConfigurationError
from relier.store.broker import as_bytes
from relier.store.clients import SyncClient

SOFT_S = 1.0
HARD_S = 2.5
HOOK_NOTES = "demo:soft-timeout"
ATTEMPTS = "demo:attempts"


@app.task(name="demo.export_ledger", soft_timeout=SOFT_S, hard_timeout=HARD_S)
async def export_ledger(month: str) -> str:
    """Hangs: the 'remote ledger' never answers."""
    await asyncio.Event().wait()
    return f"ledger {month} exported"


@export_ledger.on_soft_timeout
async def release_export_lock(ctx: TaskContext) -> None:
    """The cleanup hook: runs at the soft timeout, while the task still hangs."""
    await app.broker().client.rpush(HOOK_NOTES, f"{ctx.id} {time.time()}")


@app.task(name="demo.sync_inventory", retries=3, retry_backoff=0.2)
async def sync_inventory(store: str) -> str:
    """Fails twice (a flaky upstream), then succeeds."""
    attempt = current_task().attempt
    await app.broker().client.rpush(ATTEMPTS, f"{attempt} {time.time()}")
    if attempt < 3:
        raise ConnectionError(f"upstream reset the connection (attempt {attempt})")
    return f"{store} synced on attempt {attempt}"


def _wait_for_hook(client: SyncClient, task_id: str, timeout: float) -> float:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for raw in client.lrange(HOOK_NOTES, 0, -1):
            hooked_id, at = as_bytes(raw).decode().split()
            if hooked_id == task_id:
                return float(at)
        time.sleep(0.05)
    raise ConfigurationError("demo: the soft-timeout hook did not run")


def show_timeouts(client: SyncClient, console: Console) -> None:
    """The scene; raises ConfigurationError if a step does not happen."""
    console.rule("a hung task: its soft-timeout hook, then its hard timeout")
    pushed_at = time.time()
    hung = export_ledger.push("2026-10")
    console.print(f"  export_ledger {hung.id[:8]} waits on a ledger that never answers")
    console.print(f"  (soft_timeout {SOFT_S:g} s, hard_timeout {HARD_S:g} s)")
    hooked_at = _wait_for_hook(client, hung.id, 15)
    console.print(f"  [yellow]soft timeout[/yellow]: its cleanup hook ran at "
                  f"{hooked_at - pushed_at:.1f} s; the task goes on")
    try:
        hung.result(timeout=15)
    except TaskFailed as exc:
        console.print(f"  [red]hard timeout[/red]: cancelled; the handle raises TaskFailed: "
                      f"{exc.exc_type}({exc.exc_message[0]})")
    else:
        raise ConfigurationError("demo: the hung task was not timed out")
    [entry] = DeadLetterQueue(client).entries(Filter(task_id=hung.id))
    console.print(f"  DLQ: reason [bold]{entry.reason}[/bold] after {entry.elapsed or 0:.3f} s,"
                  " hung at:")
    for line in (entry.traceback or "").splitlines()[1:3]:
        console.print(f"    {line.strip().replace(os.getcwd() + os.sep, '')}", soft_wrap=True)

    console.rule("retries: a flaky task, backoff with jitter through Redis")
    flaky = sync_inventory.push("store-7")
    console.print(f"  sync_inventory {flaky.id[:8]} -> {flaky.result(timeout=15)}")
    starts = [float(as_bytes(raw).split()[1]) for raw in client.lrange(ATTEMPTS, 0, -1)]
    gaps = ", ".join(f"{b - a:.2f} s" for a, b in itertools.pairwise(starts))
    console.print(f"  {len(starts)} attempts, {gaps} apart: retry n waits a random")
    console.print("  0..0.2 s x 2^(n-1) in the queue's delayed set in Redis")
