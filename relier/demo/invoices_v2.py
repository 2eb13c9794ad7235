"""The demo's "new release" of ``demo.send_invoice``: version 2 takes ``Money``.

Payloads of version 1 (an old producer still running, or a Celery producer) are brought
up to date by the upgrader; a version 1 worker defers version 2 payloads until a worker
of this release takes them.
"""

from __future__ import annotations

from typing import Any

import msgspec

from relier import App, current_task
from relier.demo.invoices_v1 import QUEUE

app = App()


class Money(msgspec.Struct):
    cents: int
    currency: str


@app.task(name="demo.send_invoice", queue=QUEUE, version=2)
async def send_invoice(customer: str, amount: Money) -> dict[str, str]:
    return {"worker": current_task().worker_id,
            "invoice": f"{customer}, {amount.cents / 100:.2f} {amount.currency}"}


@send_invoice.upgrade(from_version=1)
def cents_to_money(args: list[Any], kwargs: dict[str, Any]) -> tuple[list[Any], dict[str, Any]]:
    """Version 1 sent ``amount_cents`` (always euros); version 2 sends ``Money``."""
    if "amount_cents" in kwargs:
        kwargs["amount"] = {"cents": kwargs.pop("amount_cents"), "currency": "EUR"}
    else:
        args[1] = {"cents": args[1], "currency": "EUR"}
    return args, kwargs
