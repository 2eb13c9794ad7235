"""The "old release" of the deploy tests' tasks: every task at version 1.

Loaded by worker subprocesses (-A tests.taskapps.deploy_v1:app) next to deploy_v2 on the
same queue; the tests also push through this App to produce version 1 payloads.
"""

from __future__ import annotations

from relier import App, current_task

app = App()

#: Each run appends "<release> <task> <task id>" here, so a test sees what ran where.
RUNS = "test:deploy:runs"


async def record(release: str) -> None:
    ctx = current_task()
    await app.broker().client.rpush(RUNS, f"{release} {ctx.name} {ctx.id}")


@app.task(name="deploy.greet")
async def greet(name: str) -> str:
    await record("v1")
    return f"v1 hello {name}"


@app.task(name="deploy.note")
async def note(order_id: str) -> dict[str, str]:
    await record("v1")
    return {"order": order_id}


@app.task(name="deploy.charge")
async def charge(amount_cents: int) -> int:
    await record("v1")
    return amount_cents
