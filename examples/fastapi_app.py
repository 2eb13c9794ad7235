"""FastAPI pushing Relier tasks. Run: uvicorn examples.fastapi_app:app (see README.md)."""

from __future__ import annotations

from fastapi import FastAPI

import relier.integrations.fastapi
from examples.web_tasks import add, build_report, send_welcome_email

app = FastAPI(title="Relier + FastAPI")
# A full queue becomes 429 + Retry-After; Relier's pools open and close with the server.
relier.integrations.fastapi.register(app)


@app.post("/signup/{address}", status_code=202)
async def signup(address: str) -> dict[str, str]:
    """Queue the welcome email and answer at once."""
    handle = await send_welcome_email.apush(address)
    return {"task_id": handle.id}


@app.get("/add")
async def add_numbers(x: int, y: int) -> dict[str, int]:
    """Run `add` on a worker and wait for its result."""
    handle = await add.apush(x, y)
    return {"result": await handle.aresult(timeout=10)}


@app.post("/reports", status_code=202)
async def report(seconds: float = 20.0) -> dict[str, str]:
    """Queue a long task (the compose stack's crash drill kills its worker mid-run)."""
    handle = await build_report.apush(seconds)
    return {"task_id": handle.id}
