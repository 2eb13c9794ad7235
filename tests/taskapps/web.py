"""Tasks pushed by the web-framework integration tests (-A tests.taskapps.web:app)."""

from __future__ import annotations

from relier import App

app = App()

#: The queue the tests fill up; its limit is set per test.
QUEUE = "emails"


@app.task(name="web.send_email", queue=QUEUE)
async def send_email(to: str) -> str:
    return f"sent to {to}"
