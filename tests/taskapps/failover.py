"""A task that notes every run in a file outside Redis, for tests that kill a Redis master:
what ran, and how often, survives whatever Redis loses."""

from __future__ import annotations

import os

from relier import App, current_task

app = App()


@app.task(name="failover.note")
def note(n: int) -> int:
    with open(os.environ["RELIER_TEST_RUN_LOG"], "a", encoding="utf-8") as log:
        log.write(f"{current_task().id} {n}\n")
    return n
