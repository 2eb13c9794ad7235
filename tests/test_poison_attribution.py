"""Poison attribution with evidence, with real processes and kill-by-task deaths.

A worker that dies holding several tasks proves nothing against any of them: they run
again (beside others the first time; alone, through the suspect lane, once they have been
at two deaths). Only a death while a task was the only one its worker held (a lone death)
counts; ``max_resurrections`` of those quarantine it.
"""

from __future__ import annotations

import pytest
import redis

from relier import TaskFailed
from relier.protocol import dead_letter
from relier.store import keys
from tests.conftest import FAST, StartWorker
from tests.polling import poll
from tests.taskapps import basic

APP = "tests.taskapps.basic:app"
ENV = {**FAST, "RELIER_MAX_RESURRECTIONS": "2"}

pytestmark = pytest.mark.usefixtures("basic_app")


def started(client: redis.Redis, marker: str) -> list[str]:
    return [v.decode() for v in client.lrange(f"test:started:{marker}", 0, -1)]


def test_innocents_sharing_a_worker_with_a_killer_are_not_quarantined(
    start_worker: StartWorker, rclient: redis.Redis
) -> None:
    first = start_worker(APP, env=ENV)
    innocents = basic.whoami.push_many([(("innocent", 1.0), {}) for _ in range(5)])
    poll(lambda: len(started(rclient, "innocent")) == 5, 30, "the innocents running")
    killer = basic.crash.push("killer")  # lands on the same worker, which it kills
    assert first.wait(30) == 1
    # The killer may take up to 3 more workers (one more shared death, two lone ones).
    others = [start_worker(APP, env=ENV) for _ in range(4)]

    with pytest.raises(TaskFailed) as caught:
        killer.result(timeout=90)
    assert caught.value.exc_type == "PoisonTask"
    # Every innocent ran again (alone) and finished; none was dead-lettered.
    assert {h.result(timeout=60) for h in innocents} <= {
        o.wait_for_line("consuming").split("worker ", 1)[1].split()[0] for o in others}
    entries = [dead_letter.decode(raw)
               for raw in rclient.lrange(keys.dead_letters("default"), 0, -1)]
    assert [(e.task_id, e.reason) for e in entries] == [(killer.id, "poison")]
    # The first death (six tasks held) counted against no one; only two lone deaths did.
    deaths = entries[0].resurrections
    assert deaths in (3, 4)  # 1-2 shared deaths, then 2 lone ones
    assert entries[0].message["headers"].get("relier_lone_deaths", 0) == 1
    assert "2 times while running it alone" in entries[0].error
    assert len(started(rclient, "killer")) == deaths
    assert sum(w.process.poll() is None for w in others) == 5 - deaths
