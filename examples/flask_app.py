"""Flask pushing Relier tasks. Run: flask --app examples.flask_app run (see README.md)."""

from __future__ import annotations

from typing import Any

from flask import Flask, request

import relier.integrations.flask
from examples.web_tasks import add, build_report, send_welcome_email
from examples.web_tasks import task_status as status_of

app = Flask(__name__)
# A full queue becomes 429 + Retry-After; the connection pool is closed at exit.
relier.integrations.flask.register(app)


@app.post("/signup/<address>")
def signup(address: str) -> tuple[dict[str, str], int]:
    """Queue the welcome email and answer at once."""
    return {"task_id": send_welcome_email.push(address).id}, 202


@app.get("/add")
def add_numbers() -> dict[str, int]:
    """Run `add` on a worker and wait for its result."""
    handle = add.push(int(request.args["x"]), int(request.args["y"]))
    return {"result": handle.result(timeout=10)}


@app.post("/reports")
def start_report() -> tuple[dict[str, str], int]:
    """Start a long task; the client keeps the id and polls ``/tasks/<id>``."""
    return {"task_id": build_report.push(int(request.args.get("pages", 10))).id}, 202


@app.get("/tasks/<task_id>")
def task_status(task_id: str) -> dict[str, Any]:
    """State and progress, result or error of any task, by id (PENDING if unknown)."""
    return status_of(task_id)
