"""The beat in-process, against the real test server: the fenced tick script, a zombie
leader's late pass, missed-run policies after a simulated outage (the clock is the
test's), admission, removed schedules, rolling-deploy declarations and the read side."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

import anyio
import pytest
import redis
from typer.testing import CliRunner

import relier
from relier import App
from relier.cli import cli
from relier.observability.metrics import WorkerMetrics
from relier.protocol import message as wire
from relier.protocol.declaration import Registration
from relier.runtime.beat import Beat, LeaseLost
from relier.store import keys
from relier.store import schedules as store

T0 = 1_800_000_000.0  # a round instant (a multiple of 60 s), as the test's clock


class Clock:
    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def make_app(redis_url: str, **settings: Any) -> App:
    app = App(redis_url=redis_url, **settings)

    @app.task(name="beat.job", queue="ticks")
    async def job(label: str = "x") -> str:
        return label

    return app


@pytest.fixture
async def app(redis_url: str) -> AsyncIterator[App]:
    made = make_app(redis_url)
    yield made
    await made.aclose()
    made.close()


def ticks_sent(client: redis.Redis, queue: str = "ticks") -> list[tuple[str, int]]:
    """(schedule, tick) of every message waiting on ``queue``, oldest first."""
    found = []
    for raw in reversed(client.lrange(queue, 0, -1)):
        headers = json.loads(raw)["headers"]
        found.append((headers[wire.SCHEDULE_HEADER], headers[wire.TICK_HEADER]))
    return found


async def leading_beat(
    app: App, worker: str, clock: Clock, metrics: WorkerMetrics | None = None
) -> tuple[Beat, relier.Lock]:
    beat = Beat(app, app.broker(), worker, started_at=clock(), clock=clock, metrics=metrics)
    lock = app.lock(keys.SCHEDULER_LOCK, ttl=30, holder=worker, timeout=0)
    await lock.aacquire()
    await store.declare(app.broker().client, beat.registration(), 60_000)
    return beat, lock


async def test_a_tick_is_enqueued_once_and_only_by_the_current_leader(
    app: App, rclient: redis.Redis
) -> None:
    app.schedule(app.tasks["beat.job"], relier.every(seconds=1))
    beat, lock = await leading_beat(app, "w1", Clock())
    declared = app.schedules["beat.job"]
    tick = int(T0 * 1000)

    async def send(holder: str) -> store.TickOutcome:
        return await store.tick(app.broker(), holder=holder, name="beat.job", tick_ms=tick,
                                now_ms=tick, batch=beat._outgoing(declared, tick))

    stale = await send(f"w0 {lock.token - 1 if lock.token else 0}")
    assert stale.status == "stale" and rclient.llen("ticks") == 0
    sent = await send(lock.value)
    assert sent.status == "sent" and sent.enqueued is not None
    again = await send(lock.value)
    assert again.status == "done"
    assert ticks_sent(rclient) == [("beat.job", tick)]
    state = store.parse_state(rclient.hgetall(keys.schedule_state("beat.job")))
    assert state.last_tick_ms == tick and state.last_task_id == sent.enqueued.task_id
    assert state.sent == 1


async def test_a_zombie_leader_pass_after_losing_its_lease_is_refused(
    app: App, rclient: redis.Redis
) -> None:
    app.schedule(app.tasks["beat.job"], relier.every(seconds=1))
    clock = Clock()
    zombie, zombie_lock = await leading_beat(app, "zombie", clock)
    await zombie.run_pass(zombie_lock.value)  # first sight: the baseline, nothing sent
    clock.now += 1.0
    await zombie.run_pass(zombie_lock.value)
    assert ticks_sent(rclient) == [("beat.job", int(T0 * 1000) + 1000)]

    # The zombie is paused past its lease; another worker takes the lease over.
    rclient.delete(keys.lock(keys.SCHEDULER_LOCK))
    heir, heir_lock = await leading_beat(app, "heir", clock)
    clock.now += 1.0
    with pytest.raises(LeaseLost):
        await zombie.run_pass(zombie_lock.value)  # resumed: its late attempt is refused
    assert len(ticks_sent(rclient)) == 1
    await heir.run_pass(heir_lock.value)
    assert [t for _, t in ticks_sent(rclient)] == [int(T0 * 1000) + 1000, int(T0 * 1000) + 2000]


async def test_missed_run_policies_after_an_outage(app: App, rclient: redis.Redis) -> None:
    job = app.tasks["beat.job"]
    for policy in ("skip", "once", "all"):
        app.schedule(job, relier.every(minutes=1, missed=policy, args=(policy,)),  # type: ignore[arg-type]
                     name=f"minutely-{policy}")
    clock = Clock()
    metrics = WorkerMetrics()
    beat, lock = await leading_beat(app, "w1", clock, metrics)
    await beat.run_pass(lock.value)  # baselines at T0
    clock.now += 3 * 3600 + 30  # three hours down (180 ticks), half a minute past the last
    await beat.run_pass(lock.value)

    sent: dict[str, list[int]] = {}
    for name, tick in ticks_sent(rclient):
        sent.setdefault(name, []).append(tick)
    last = int(T0 * 1000) + 180 * 60_000
    assert "minutely-skip" not in sent
    assert sent["minutely-once"] == [last]
    assert sent["minutely-all"] == list(range(last - 99 * 60_000, last + 1, 60_000))
    found = store.states_sync(rclient, dict.fromkeys(
        ["minutely-skip", "minutely-once", "minutely-all"], "default"))
    assert (found["minutely-skip"].missed, found["minutely-once"].missed,
            found["minutely-all"].missed) == (180, 179, 80)
    assert all(s.last_tick_ms == last for s in found.values())
    assert "no scheduler ran (missed=skip)" in (found["minutely-skip"].last_missed_reason or "")
    sample = metrics.registry.get_sample_value
    assert sample("relier_schedule_ticks_sent_total", {"schedule": "minutely-all"}) == 100
    assert sample("relier_schedule_ticks_missed_total",
                  {"schedule": "minutely-once", "reason": "outage"}) == 179


async def test_a_tick_refused_by_admission_is_recorded_as_missed(
    redis_url: str, rclient: redis.Redis
) -> None:
    app = App(redis_url=redis_url)

    @app.task(name="beat.bounded", queue="ticks", max_queue_depth=1,
              schedule=relier.every(seconds=1))
    async def bounded() -> None: ...

    try:
        clock = Clock()
        beat, lock = await leading_beat(app, "w1", clock)
        await beat.run_pass(lock.value)
        await bounded.apush()  # the queue is now full
        clock.now += 1.0
        await beat.run_pass(lock.value)
        state = store.states_sync(rclient, {"beat.bounded": "default"})["beat.bounded"]
        assert state.missed == 1 and state.sent == 0
        assert state.last_tick_ms == int(clock.now * 1000)
        assert "admission refused (depth" in (state.last_missed_reason or "")
        assert rclient.llen("ticks") == 1  # only the push
    finally:
        await app.aclose()
        app.close()


async def test_a_schedule_no_live_worker_declares_is_not_sent(
    app: App, rclient: redis.Redis
) -> None:
    app.schedule(app.tasks["beat.job"], relier.every(seconds=1))
    clock = Clock()
    beat, lock = await leading_beat(app, "w1", clock)
    await beat.run_pass(lock.value)
    await store.withdraw(app.broker().client, "w1")  # the release without it is all that runs
    clock.now += 5.0
    await beat.run_pass(lock.value)
    assert rclient.llen("ticks") == 0
    assert rclient.smembers(keys.SCHEDULE_DECLARERS) == set()


async def test_during_a_rolling_deploy_the_newest_workers_spec_is_sent(
    app: App, rclient: redis.Redis
) -> None:
    job = app.tasks["beat.job"]
    app.schedule(job, relier.every(seconds=1, args=("old release",)), name="report")
    clock = Clock()
    beat, lock = await leading_beat(app, "old-worker", clock)  # the leader is the old one
    await beat.run_pass(lock.value)
    newer = make_app(app.settings.redis_url)
    newer.schedule(newer.tasks["beat.job"], relier.every(seconds=1, args=("new release",)),
                   name="report")
    await store.declare(app.broker().client, Registration(
        worker="new-worker", started_at=clock() + 60, schedules=list(newer.schedules.values())),
        60_000)
    clock.now += 1.0
    await beat.run_pass(lock.value)
    raw = rclient.lindex("ticks", 0)
    assert raw is not None
    body = wire.decode(raw)
    assert body.args == ["new release"]


async def test_schedules_command_shows_spec_runs_state_and_leader(
    app: App, rclient: redis.Redis, redis_url: str
) -> None:
    app.schedule(app.tasks["beat.job"],
                 relier.cron("*/5 * * * *", tz="Europe/Paris", args=("five",)), name="five")
    clock = Clock()
    beat, lock = await leading_beat(app, "w-lead", clock)
    await beat.run_pass(lock.value)
    clock.now += 300.0
    await beat.run_pass(lock.value)
    tick_id = store.states_sync(rclient, {"five": "default"})["five"].last_task_id
    assert tick_id

    result = CliRunner().invoke(cli, ["schedules", "--json", "--redis-url", redis_url])
    assert result.exit_code == 0, result.output
    shown = json.loads(result.output)
    assert shown["leader"] == {"worker": "w-lead", "token": lock.token}
    (five,) = shown["schedules"]
    assert five["spec"] == "cron('*/5 * * * *', tz=Europe/Paris)"
    assert five["timezone"] == "Europe/Paris" and five["args"] == ["five"]
    assert five["last_run"] == T0 + 300 and five["last_task_id"] == tick_id
    assert five["last_task_state"] == "PENDING" and five["sent"] == 1
    assert five["declared_by"] == ["w-lead"] and five["next_run"] > five["last_run"]

    inspected = CliRunner().invoke(cli, ["inspect", "--json", "--redis-url", redis_url])
    snapshot = json.loads(inspected.output)
    assert {"queues", "workers", "running"} <= snapshot.keys()
    assert snapshot["schedules"]["schedules"][0]["name"] == "five"
    table = CliRunner().invoke(cli, ["schedules", "--redis-url", redis_url])
    assert "leader: w-lead" in table.output and "five" in table.output


def test_hostile_declarations_are_ignored_not_guessed(rclient: redis.Redis) -> None:
    rclient.sadd(keys.SCHEDULE_DECLARERS, "evil")
    rclient.set(keys.schedule_declaration("evil"), b'{"worker": "evil", "schedules": 7}')
    assert store.registrations_sync(rclient) == []
    assert store.parse_state({b"last_tick_ms": b"soon", b"sent": b"3"}) == store.ScheduleState(
        sent=3)
    assert store.parse_leader(b"no-token-here") is None
    assert store.parse_leader(b"w-1 12") == store.Leader("w-1", 12)


async def test_jitter_delays_the_message_and_idempotency_is_per_tick(
    redis_url: str, rclient: redis.Redis
) -> None:
    app = App(redis_url=redis_url)

    @app.task(name="beat.charge", queue="ticks", idempotent=True,
              schedule=relier.every(seconds=1, jitter=30))
    async def charge() -> None: ...

    try:
        clock = Clock()
        beat, lock = await leading_beat(app, "w1", clock)
        await beat.run_pass(lock.value)
        sent_ms = time.time() * 1000
        for _ in range(2):
            clock.now += 1.0
            await beat.run_pass(lock.value)
        assert rclient.llen("ticks") == 0  # waiting out their jitter, in the delayed set
        parked = rclient.zrange(keys.delayed("ticks"), 0, -1, withscores=True)
        assert len(parked) == 2  # same arguments, two ticks: two calls, not one
        for raw, due_ms in parked:
            headers = json.loads(raw)["headers"]
            tick = headers[wire.TICK_HEADER]
            assert headers[wire.IDEMPOTENCY_HEADER] == f"schedule:beat.charge:{tick}"
            # The jitter counts from the sending (the real clock; the test's clock is fake).
            assert sent_ms - 1000 <= due_ms <= time.time() * 1000 + 30_000
    finally:
        await app.aclose()
        app.close()


async def test_the_beat_outlives_an_unreachable_redis(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="relier.beat")  # an outage is a debug line here
    app = make_app("redis://127.0.0.1:1/0")  # nothing listens there
    app.schedule(app.tasks["beat.job"], relier.every(seconds=1))
    beat = Beat(app, app.broker(), "w1", started_at=T0)
    try:
        with anyio.move_on_after(2.5) as scope:
            await beat.run()  # an error escaping here would take the worker down
        assert scope.cancelled_caught and not beat.leading
        assert "could not compete for the scheduler lease" in caplog.text
        assert "could not declare this worker's schedules" in caplog.text
    finally:
        await app.aclose()
