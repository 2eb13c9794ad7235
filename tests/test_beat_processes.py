"""The beat with real worker processes and real signals: three workers share a 1-second
schedule while the leader is killed with -9 and the next one is SIGSTOP'd past its lease
and resumed; a restart after a simulated outage follows the missed-run policy."""

from __future__ import annotations

import itertools
import json
import os
import signal
import time
from typing import Final

import redis

from relier.protocol import message as wire
from relier.store import keys
from relier.store import schedules as store
from tests.conftest import FAST, StartWorker, WorkerProcess
from tests.polling import poll

APP: Final = "tests.taskapps.scheduled:app"
LEASE_S: Final = 2.0
ENV: Final = {**FAST, "RELIER_SCHEDULE_LEASE": str(LEASE_S)}
#: Real seconds the three workers share the schedule (60 in the issue; 36 on this loaded
#: machine keeps the test affordable and still spans a kill -9 and a SIGSTOP; set
#: BEAT_TEST_RUN_S=60 for the full run).
RUN_S: Final = float(os.environ.get("BEAT_TEST_RUN_S", "36"))
#: Slack for a loaded machine on top of the lease and the 1 s interval.
SLACK_S: Final = 3.0


def enqueued(client: redis.Redis) -> list[tuple[int, float]]:
    """(tick ms, sent-at s) of every tick message on the unconsumed queue, oldest first."""
    found = []
    for raw in reversed(client.lrange("ticks", 0, -1)):
        headers = json.loads(raw)["headers"]
        found.append((headers[wire.TICK_HEADER], headers[wire.SENT_AT_HEADER]))
    return found


def leader(client: redis.Redis, workers: list[WorkerProcess], not_pid: int = 0) -> WorkerProcess:
    """The process holding the scheduler lease (waiting until one other than ``not_pid`` does)."""
    def current() -> WorkerProcess | None:
        held = store.leader_sync(client)
        pid = int(held.worker.split("-")[-2]) if held else 0
        return next((w for w in workers if w.pid == pid and pid != not_pid), None)
    return poll(current, timeout=30, what="a schedule leader")


def test_one_enqueue_per_tick_through_kill_9_and_sigstop(
    start_worker: StartWorker, rclient: redis.Redis
) -> None:
    workers = [start_worker(APP, queues="default", env=ENV) for _ in range(3)]
    started = time.monotonic()
    first = leader(rclient, workers)
    poll(lambda: len(enqueued(rclient)) >= 5, timeout=30, what="ticks from the first leader")

    first.kill()  # kill -9 (the whole process group) mid-run
    second = leader(rclient, workers, not_pid=first.pid)
    poll(lambda: len(enqueued(rclient)) >= 12, timeout=30, what="ticks from the second leader")

    second.signal(signal.SIGSTOP)  # frozen past its lease: a zombie leader
    third = leader(rclient, workers, not_pid=second.pid)
    assert third is not first
    poll(lambda: len(enqueued(rclient)) >= 20, timeout=30, what="ticks from the third leader")
    second.signal(signal.SIGCONT)  # it wakes up believing it leads
    second.wait_for_line("lost the scheduler lease", timeout=30)
    remaining = RUN_S - (time.monotonic() - started)
    if remaining > 0:
        time.sleep(remaining)  # let the survivors share the schedule for the rest of the run
    sent = enqueued(rclient)
    ticks = [t for t, _ in sent]
    assert len(ticks) == len(set(ticks)), "a tick was enqueued twice"
    assert ticks == list(range(ticks[0], ticks[-1] + 1, 1000)), "a tick was lost"
    gaps = [b - a for (_, a), (_, b) in itertools.pairwise(sent)]
    assert max(gaps) <= LEASE_S + 1 + SLACK_S, f"longest gap {max(gaps):.2f}s"
    assert len(ticks) >= 25
    print(f"\n{len(ticks)} ticks, each once; longest gap between enqueues {max(gaps):.2f}s "
          f"(lease {LEASE_S}s)")


def test_a_restart_after_an_outage_sends_once_and_records_the_rest_missed(
    start_worker: StartWorker, rclient: redis.Redis
) -> None:
    hour_ago = int((time.time() - 3600) * 1000)
    rclient.hset(keys.schedule_state("sched.tick"), "last_tick_ms", hour_ago)
    worker = start_worker(APP, queues="default", env=ENV)
    queues = {"sched.tick": "default"}
    state = poll(lambda: (s := store.states_sync(rclient, queues)["sched.tick"]).missed and s,
                 timeout=30, what="the outage recorded as missed")
    # missed="once" (the default): the hour's 3600 late ticks are not sent; only the few
    # ticks younger than two leases (a failover's worth) are.
    assert state.missed >= 3600 - 2 * LEASE_S - SLACK_S - 1
    assert "no scheduler ran (missed=once)" in (state.last_missed_reason or "")
    poll(lambda: enqueued(rclient), timeout=30, what="a tick sent after the outage")
    oldest_sent = enqueued(rclient)[0][0]
    assert oldest_sent > time.time() * 1000 - 60_000
    worker.signal(signal.SIGTERM)
    assert worker.wait() == 0
    assert store.leader_sync(rclient) is None  # released at once on a clean stop
    assert rclient.smembers(keys.SCHEDULE_DECLARERS) == set()  # and withdrawn


def test_no_schedule_workers_never_lead(start_worker: StartWorker, rclient: redis.Redis) -> None:
    quiet = start_worker(APP, "--no-schedule", queues="default", env=ENV)
    poll(lambda: rclient.smembers(keys.SCHEDULE_DECLARERS), timeout=30,
         what="the schedules declared")
    leading = start_worker(APP, queues="default", env=ENV)
    held = poll(lambda: store.leader_sync(rclient), timeout=30, what="a leader")
    assert f"-{leading.pid}-" in held.worker
    poll(lambda: rclient.llen("ticks") >= 2, timeout=30, what="ticks sent by the leader")
    assert "leading the schedules" not in quiet.output
