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
def add_numbers() -> tuple[dict[str, object], int]:
    """Run `add` on a worker and wait for its result; 400 unless x and y are integers."""
    x, y = request.args.get("x", type=int), request.args.get("y", type=int)
    if x is None or y is None:
        return {"error": "bad_request", "detail": "x and y must be integers, as in "
                "/add?x=2&y=3"}, 400
    return {"result": add.push(x, y).result(timeout=10)}, 200


@app.post("/reports")
def start_report() -> tuple[dict[str, str], int]:
    """Start a long task; the client keeps the id and polls ``/tasks/<id>``."""
    return {"task_id": build_report.push(int(request.args.get("pages", 10))).id}, 202


@app.get("/tasks/<task_id>")
def task_status(task_id: str) -> dict[str, Any]:
    """State and progress, result or error of any task, by id (PENDING if unknown)."""
    return status_of(task_id)
