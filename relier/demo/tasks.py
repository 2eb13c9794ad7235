"""The tasks `relier demo` runs. Each one notes where it started, for the narration."""

from __future__ import annotations

import asyncio
import time

from relier import App, current_task

app = App()

STARTED = "demo:started"


async def _note_start() -> None:
    ctx = current_task()
    await app.broker().client.rpush(STARTED, f"{ctx.id} {ctx.worker_id} {time.time()}")


@app.task(name="demo.fetch_quote")
async def fetch_quote(symbol: str) -> dict[str, object]:
    """An I/O-bound async task: runs on the worker's event loop."""
    await _note_start()
    await asyncio.sleep(0.2)
    return {"symbol": symbol, "price": round(100 + len(symbol) * 1.5, 2)}


@app.task(name="demo.resize_image")
def resize_image(path: str, width: int) -> str:
    """A blocking sync task: runs in one of the worker's threads."""
    time.sleep(0.3)
    return f"{path} resized to {width}px"


@app.task(name="demo.charge_card")
async def charge_card(customer: str, amount_cents: int) -> str:
    """A task that fails: its error comes back to the caller and lands in the DLQ."""
    raise RuntimeError(f"card declined for {customer} ({amount_cents} cents)")


@app.task(name="demo.nightly_report")
async def nightly_report(seconds: float) -> str:
    """A long task: the demo kills its worker midway and Phoenix finishes it elsewhere."""
    await _note_start()
    await asyncio.sleep(seconds)
    return f"report done on {current_task().worker_id}"


CHARGES = "demo:charges"


@app.task(name="demo.pay", idempotent=True)
async def pay(order: str, amount_cents: int) -> str:
    """Charges a card once per order, however many times the button is clicked."""
    ctx = current_task()
    await app.broker().client.rpush(CHARGES, ctx.id)
    await asyncio.sleep(0.5)  # the payment provider takes its time
    key = (ctx.idempotency_key or "")[:12]
    return f"charged {amount_cents} cents for {order} (key {key}...)"


@app.task(name="demo.render_thumbnail", queue="low_priority", max_queue_depth=4)
async def render_thumbnail(photo: str) -> str:
    """Admission control's scene: slow, and at most 4 may wait in its queue."""
    await asyncio.sleep(1.0)
    return f"{photo} thumbnail"
