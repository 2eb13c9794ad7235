"""Idempotent tasks for the idempotency tests (-A tests.taskapps.payments:app).

Every run appends ``"<task id> <attempt> <resurrections>"`` to ``test:runs:<name>``, so a
test can count executions across processes.
"""

from __future__ import annotations

import asyncio
import time

from relier import App, current_task

app = App()


async def _note_run(name: str) -> None:
    ctx = current_task()
    await app.broker().client.rpush(
        f"test:runs:{name}", f"{ctx.id} {ctx.attempt} {ctx.resurrections} {time.time()}"
    )


@app.task(name="payments.charge", idempotent=True)
async def charge(customer: str, amount_cents: int, currency: str = "eur") -> dict[str, object]:
    """Takes a little while, so that concurrent dispatches overlap its run."""
    await _note_run("charge")
    await asyncio.sleep(0.3)
    ctx = current_task()
    return {"customer": customer, "amount": amount_cents, "currency": currency,
            "key": ctx.idempotency_key, "charged_by": ctx.id}


@app.task(name="payments.refund")
async def refund(order: str) -> str:
    """Not idempotent by itself; idempotent per call with ``idempotency_key``."""
    await _note_run("refund")
    return f"refunded {order}"


@app.task(name="payments.settle", idempotent=True)
async def settle(batch: str, hold_s: float) -> str:
    """Holds ``hold_s`` seconds on its first delivery only (a test kills the worker then)."""
    await _note_run("settle")
    if current_task().resurrections == 0:
        await asyncio.sleep(hold_s)
    return f"settled {batch}"


@app.task(name="payments.flaky", idempotent=True)
async def flaky(order: str) -> str:
    """Fails on its first run, succeeds afterwards."""
    await _note_run("flaky")
    runs = await app.broker().client.incr(f"test:flaky:{order}")
    if runs == 1:
        raise RuntimeError(f"gateway timeout for {order}")
    return f"paid {order}"


@app.task(name="payments.receipt", idempotent=True, idempotency_ttl=1, ignore_result=True)
async def receipt(order: str) -> None:
    """A short idempotency window, and no result kept."""
    await _note_run("receipt")


@app.task(name="payments.notify", ignore_result=True)
async def notify(customer: str) -> str:
    """Not idempotent, keeps no result."""
    await _note_run("notify")
    return f"notified {customer}"
