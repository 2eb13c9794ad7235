"""FastAPI pushing Relier tasks. Run: uvicorn examples.fastapi_app:app (see README.md)."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

import relier.integrations.fastapi
from examples.web_tasks import add, build_report, describe, send_welcome_email
from relier.tasks import app as relier_app

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
async def start_report(pages: int = 10, seconds_per_page: float = 0.2) -> dict[str, str]:
    """Start a long task; the client keeps the id and polls ``/tasks/{id}``."""
    return {"task_id": (await build_report.apush(pages, seconds_per_page)).id}


@app.get("/tasks/{task_id}")
async def task_status(task_id: str) -> dict[str, Any]:
    """State and progress, result or error of any task, by id (PENDING if unknown)."""
    handle = relier_app.result(task_id)
    return describe(task_id, await handle.astatus(), await handle.ainfo())
