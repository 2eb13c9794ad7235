"""Demo scene: a double-click on "pay" dispatches twice and charges once."""

from __future__ import annotations

from rich.console import Console

from relier.demo import tasks
from relier.store.clients import SyncClient


def double_click(console: Console, client: SyncClient) -> None:
    console.rule("idempotency: a double-click on \"pay\"")
    first = tasks.pay.push("order-1042", 4999)
    second = tasks.pay.push("order-1042", 4999)  # the second click, while the first runs
    console.print(f"  click 1 -> task {first.id[:8]}   click 2 -> task {second.id[:8]}")
    console.print(f"  click 1 result: {first.result(timeout=10)}")
    console.print(f"  click 2 result: {second.result(timeout=10)}")
    later = tasks.pay.push("order-1042", 4999)  # a retry from the client, after success
    console.print(f"  a retry after it succeeded -> task {later.id[:8]}, result at once, "
                  "nothing enqueued")
    charges = client.llen(tasks.CHARGES)
    console.print(f"  dispatched 3 times, [bold green]charged {charges} time(s)[/bold green]")
