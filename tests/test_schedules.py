"""Schedule math with a controlled clock: cron in time zones and across DST, epoch-aligned
intervals, the missed-run policies, and declaring schedules. No Redis, no waiting."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

import relier
from relier import App, ConfigurationError
from relier.protocol import declaration
from relier.protocol.cadence import (
    SCAN_CAP,
    CadenceError,
    Cron,
    DueTicks,
    Every,
    check,
    due_ticks,
    next_after,
)
from relier.protocol.catch_up import CATCH_UP_CAP, plan
from relier.protocol.declaration import DeclarationError, Registration
from relier.settings import Settings

NY = "America/New_York"  # 2026: spring forward 03-08 02:00->03:00, fall back 11-01 02:00->01:00
MINUTE = 60_000
HOUR = 60 * MINUTE


def ms(*parts: int, tz: str = "UTC") -> int:
    return int(datetime(*parts, tzinfo=ZoneInfo(tz)).timestamp() * 1000)  # type: ignore[misc]


def local(tick: int, tz: str) -> str:
    return datetime.fromtimestamp(tick / 1000, ZoneInfo(tz)).strftime("%m-%d %H:%M%z")


# -- cadence ----------------------------------------------------------------------------

def test_cron_runs_in_its_own_time_zone() -> None:
    nine_paris = Cron(expr="0 9 * * *", tz="Europe/Paris")
    assert next_after(nine_paris, ms(2026, 1, 1)) == ms(2026, 1, 1, 8)  # UTC+1 in winter
    assert next_after(nine_paris, ms(2026, 7, 1)) == ms(2026, 7, 1, 7)  # UTC+2 in summer
    assert next_after(Cron(expr="0 9 * * *"), ms(2026, 1, 1)) == ms(2026, 1, 1, 9)


def test_a_time_skipped_by_spring_forward_runs_once_at_the_next_valid_time() -> None:
    due = due_ticks(Cron(expr="30 2 * * *", tz=NY), ms(2026, 3, 7, 12, tz=NY),
                    ms(2026, 3, 9, 12, tz=NY), 10)
    # 02:30 does not exist on 03-08: it runs at 03:00, once; the next day at 02:30 again.
    assert [local(t, NY) for t in due.ticks] == ["03-08 03:00-0400", "03-09 02:30-0400"]


def test_a_time_repeated_by_fall_back_runs_once() -> None:
    due = due_ticks(Cron(expr="30 1 * * *", tz=NY), ms(2026, 10, 31, 12, tz=NY),
                    ms(2026, 11, 2, 12, tz=NY), 10)
    # 01:30 happens twice on 11-01 (EDT, then EST): one run, at the first.
    assert [local(t, NY) for t in due.ticks] == ["11-01 01:30-0400", "11-02 01:30-0500"]


def test_frequent_cron_follows_real_time_across_fall_back() -> None:
    due = due_ticks(Cron(expr="*/30 * * * *", tz=NY), ms(2026, 11, 1, 0, 10, tz=NY),
                    ms(2026, 11, 1, 3, 0, tz=NY), 50)
    # 00:30 EDT .. 03:00 EST is 3.5 real hours: a run every half hour of real time (8),
    # the repeated hour's runs included, none twice.
    assert len(due.ticks) == 8
    assert {b - a for a, b in zip(due.ticks, due.ticks[1:], strict=False)} == {30 * MINUTE}


def test_cron_with_seconds_field() -> None:
    every_ten_s = Cron(expr="*/10 * * * * *")
    assert next_after(every_ten_s, ms(2026, 1, 1, 0, 0, 5)) == ms(2026, 1, 1, 0, 0, 10)


def test_every_is_aligned_to_the_epoch_whoever_computes_it() -> None:
    thirty = Every(interval_ms=30_000)
    assert next_after(thirty, ms(2026, 1, 1, 0, 0, 7)) == ms(2026, 1, 1, 0, 0, 30)
    due = due_ticks(thirty, ms(2026, 1, 1), ms(2026, 1, 1, 0, 2), 3)
    assert due.ticks == (ms(2026, 1, 1, 0, 1, 0), ms(2026, 1, 1, 0, 1, 30),
                         ms(2026, 1, 1, 0, 2, 0))
    assert due.earlier == 1 and due.count == 4  # 00:30 was due too, not listed


def test_due_ticks_exclude_the_last_done_tick_and_include_now() -> None:
    minute = Cron(expr="* * * * *")
    due = due_ticks(minute, ms(2026, 1, 1, 0, 1), ms(2026, 1, 1, 0, 3), 10)
    assert due.ticks == (ms(2026, 1, 1, 0, 2), ms(2026, 1, 1, 0, 3))
    assert due_ticks(minute, ms(2026, 1, 1, 0, 3), ms(2026, 1, 1, 0, 3, 59), 10).count == 0


def test_a_huge_cron_outage_is_walked_in_bounded_slices() -> None:
    every_second = Cron(expr="* * * * * *")
    due = due_ticks(every_second, ms(2026, 1, 1), ms(2026, 1, 3), 100)
    assert not due.complete and due.count == SCAN_CAP
    assert due.through == ms(2026, 1, 1) + SCAN_CAP * 1000


@pytest.mark.parametrize(("cadence", "needle"), [
    (Cron(expr="61 * * * *"), "minute"),
    (Cron(expr="* * *"), "cron expression"),
    (Cron(expr="* * * * *", tz="Mars/Olympus"), "unknown time zone"),
    (Every(interval_ms=10), "at least 1 second"),
])
def test_bad_cadences_say_what_is_wrong(cadence: Cron | Every, needle: str) -> None:
    with pytest.raises(CadenceError, match=f"(?i){needle}"):
        check(cadence)


# -- missed-run policies ----------------------------------------------------------------

NOW = ms(2026, 1, 2, 8)
LATE_AFTER = 20_000


def night(after: int = ms(2026, 1, 1, 23), every_ms: int = 5 * MINUTE) -> DueTicks:
    """A 5-minute schedule whose scheduler was down from 23:00 to 08:00: 108 ticks."""
    return due_ticks(Every(interval_ms=every_ms), after, NOW, CATCH_UP_CAP)


def test_once_sends_one_run_after_a_night_down() -> None:
    result = plan(night(), now_ms=NOW, policy="once", late_after_ms=LATE_AFTER)
    assert result.send == (NOW,)  # 08:00 is due now: the one run
    assert result.missed == 107 and result.missed_through == NOW - 1


def test_once_sends_the_newest_late_tick_when_none_is_fresh() -> None:
    now = NOW + 3 * MINUTE
    due = due_ticks(Every(interval_ms=5 * MINUTE), ms(2026, 1, 1, 23), now, CATCH_UP_CAP)
    result = plan(due, now_ms=now, policy="once", late_after_ms=LATE_AFTER)
    assert result.send == (NOW,) and result.missed == 107


def test_skip_sends_nothing_late() -> None:
    now = NOW + 3 * MINUTE
    due = due_ticks(Every(interval_ms=5 * MINUTE), ms(2026, 1, 1, 23), now, CATCH_UP_CAP)
    result = plan(due, now_ms=now, policy="skip", late_after_ms=LATE_AFTER)
    assert result.send == () and result.missed == 108 and result.missed_through == NOW


def test_all_sends_every_run_up_to_the_cap() -> None:
    result = plan(night(), now_ms=NOW, policy="all", late_after_ms=LATE_AFTER)
    assert len(result.send) == CATCH_UP_CAP and result.send[-1] == NOW
    assert result.missed == 108 - CATCH_UP_CAP
    assert result.missed_through == result.send[0] - 1
    short = plan(night(after=NOW - HOUR), now_ms=NOW, policy="all", late_after_ms=LATE_AFTER)
    assert len(short.send) == 12 and short.missed == 0


@pytest.mark.parametrize("policy", ["skip", "once", "all"])
def test_ticks_a_failover_left_behind_are_sent_whatever_the_policy(policy: str) -> None:
    """A leader died; its successor took over 5 s later: every second's tick still goes."""
    due = due_ticks(Every(interval_ms=1000), NOW - 6000, NOW, CATCH_UP_CAP)
    result = plan(due, now_ms=NOW, policy=policy, late_after_ms=LATE_AFTER)  # type: ignore[arg-type]
    assert result.send == tuple(range(NOW - 5000, NOW + 1, 1000)) and result.missed == 0


def test_an_incomplete_walk_is_all_missed() -> None:
    due = DueTicks((1, 2, 3), 10, 3, complete=False)
    result = plan(due, now_ms=NOW, policy="all", late_after_ms=LATE_AFTER)
    assert result.send == () and result.missed == 13 and result.missed_through == 3


# -- declaring --------------------------------------------------------------------------

def test_declaring_schedules_on_a_task() -> None:
    app = App(redis_url="redis://unused")

    @app.task(name="t.report", queue="reports",
              schedule=relier.cron("0 3 * * *", tz="Europe/Riga", args=("daily",), jitter=5))
    async def report(kind: str, limit: int = 10) -> None: ...

    app.schedule(report, relier.every(minutes=5, kwargs={"kind": "quick", "limit": 2},
                                      missed="skip"), name="t.report-quick")
    assert sorted(app.schedules) == ["t.report", "t.report-quick"]
    daily = app.schedules["t.report"]
    assert daily.cadence == Cron(expr="0 3 * * *", tz="Europe/Riga")
    assert (daily.task, daily.queue, daily.args, daily.jitter) == ("t.report", "reports",
                                                                   ["daily"], 5.0)
    quick = app.schedules["t.report-quick"]
    assert quick.cadence == Every(interval_ms=300_000) and quick.missed == "skip"
    assert quick.kwargs == {"kind": "quick", "limit": 2}


def test_schedule_mistakes_fail_at_declaration() -> None:
    app = App(redis_url="redis://unused")

    @app.task(name="t.job")
    async def job(n: int) -> None: ...

    with pytest.raises(ConfigurationError, match="Bad minute"):
        relier.cron("99 * * * *")
    with pytest.raises(ConfigurationError, match="missed="):
        relier.every(seconds=5, missed="sometimes")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="jitter"):
        relier.every(seconds=5, jitter=-1)
    with pytest.raises(relier.ArgumentError, match="'n'"):
        app.schedule(job, relier.every(seconds=5, args=("not a number",)))
    app.schedule(job, relier.every(seconds=5, args=(1,)))
    app.schedule(job, relier.every(seconds=5, args=(1,)))  # the same again: harmless
    with pytest.raises(ConfigurationError, match="already used"):
        app.schedule(job, relier.every(seconds=9, args=(2,)))


def test_a_registration_round_trips_and_hostile_bytes_are_refused() -> None:
    app = App(redis_url="redis://unused")

    @app.task(name="t.ping", schedule=relier.every(seconds=30))
    async def ping() -> None: ...

    registration = Registration(worker="w1", started_at=1.0,
                                schedules=list(app.schedules.values()))
    assert declaration.decode(declaration.encode(registration)) == registration
    for raw in (b"not json", b'{"worker": "w", "started_at": 1, "schedules": [{"name": 1}]}',
                declaration.encode(registration).replace(b'"interval_ms":30000',
                                                         b'"interval_ms":3')):
        with pytest.raises(DeclarationError):
            declaration.decode(raw)


def test_leading_can_be_turned_off_by_keyword_or_environment() -> None:
    assert App(redis_url="redis://unused").settings.schedule is True
    assert App(redis_url="redis://unused", schedule=False).settings.schedule is False
    assert Settings.load(environ={"RELIER_SCHEDULE": "0"}).schedule is False
    assert Settings.load(environ={"RELIER_SCHEDULE_LEASE": "2.5"}).schedule_lease == 2.5


def test_the_newest_started_worker_declaration_wins() -> None:
    old = declaration.Declaration(name="s", task="t", queue="q",
                                  cadence=Every(interval_ms=60_000))
    new = declaration.Declaration(name="s", task="t", queue="q",
                                  cadence=Every(interval_ms=30_000))
    merged = declaration.merge([
        Registration(worker="new", started_at=200.0, schedules=[new]),
        Registration(worker="old", started_at=100.0, schedules=[old]),
    ])
    assert merged == {"s": new}
