"""The demo's "old release" of ``demo.send_invoice``: version 1, amounts in cents."""

from __future__ import annotations

from relier import App, current_task

app = App()

#: The scene's own queue, so the demo's other workers never see these messages.
QUEUE = "demo-deploys"


@app.task(name="demo.send_invoice", queue=QUEUE)
async def send_invoice(customer: str, amount_cents: int) -> dict[str, str]:
    return {"worker": current_task().worker_id, "invoice": f"{customer}, {amount_cents} cents"}
