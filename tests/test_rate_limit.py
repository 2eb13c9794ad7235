"""Global rate limits: a token bucket in Redis shared by every worker process."""

from __future__ import annotations

import itertools
import time

import anyio
import pytest
import redis

from relier import App, ConfigurationError
from relier.protocol import message as wire
from relier.runtime.rate_limit import RATE_TOKEN_HEADER, RateLimit
from relier.store import keys, runner, settles
from relier.store.broker import Broker, as_bytes
from tests.conftest import StartWorker
from tests.taskapps import ratelimited

APP = "tests.taskapps.ratelimited:app"



def starts(client: redis.Redis) -> list[tuple[str, str, float]]:
    found = []
    for raw in client.lrange(ratelimited.STARTS, 0, -1):
        task_id, worker, at = as_bytes(raw).decode().split()
        found.append((task_id, worker, float(at)))
    return found


@pytest.mark.parametrize(
    ("text", "per_second"), [("100/s", 100.0), ("30/m", 0.5), ("7200/h", 2.0), ("0.5/s", 0.5)]
)
def test_rate_limits_parse(text: str, per_second: float) -> None:
    limit = RateLimit.parse(text)
    assert limit.count / limit.period_s == pytest.approx(per_second)
    assert limit.interval_us == pytest.approx(1_000_000 / per_second)


@pytest.mark.parametrize("text", ["fast", "100", "0/s", "10/d", "-1/s", "/s"])
def test_a_bad_rate_limit_fails_when_the_task_is_defined(text: str) -> None:
    app = App()
    with pytest.raises(ConfigurationError, match="rate_limit="):
        app.task(rate_limit=text)(lambda: None)
    assert app.tasks == {}


async def test_tokens_are_reserved_one_interval_apart(redis_url: str) -> None:
    broker = Broker(App(redis_url=redis_url).async_client())
    try:
        ops = [settles.rate_limit(task="t.a", interval_us=100_000) for _ in range(5)]
        waits = [op.read(w) / 1000
                 for op, w in zip(ops, await runner.run_many(broker.client,
                                                              [op.call for op in ops]),
                                  strict=True)]
        # Reserved in one round trip: each token is due 100 ms after the one before (less
        # the time Redis took between the calls, which a busy 2-core machine stretches).
        assert waits[0] == 0
        for before, after in itertools.pairwise(waits):
            assert after - before == pytest.approx(100, abs=20)
        # Another task has its own bucket.
        assert await runner.perform(broker.client, settles.rate_limit(
            task="t.b", interval_us=100_000)) == 0
        ttl = await broker.client.pttl(keys.rate_limit("t.a"))
        assert 0 < ttl <= 1000 + 500 + 1
    finally:
        await broker.aclose()


@pytest.mark.usefixtures("rated_app")
async def test_over_the_limit_waits_in_the_delayed_set_until_its_token(
    start_worker: StartWorker, rclient: redis.Redis
) -> None:
    start_worker(APP)
    handles = [await ratelimited.once_a_minute.apush(i) for i in range(3)]
    assert await handles[0].aresult(timeout=10) == 0
    deadline = time.monotonic() + 20
    while rclient.zcard(keys.delayed("default")) < 2:
        assert time.monotonic() < deadline, "the over-limit messages never reached the delayed set"
        await anyio.sleep(0.05)
    parked = rclient.zrange(keys.delayed("default"), 0, -1, withscores=True)
    messages = [wire.decode(raw) for raw, _ in parked]
    assert {m.id for m in messages} == {h.id for h in handles[1:]}
    assert all(m.headers[RATE_TOKEN_HEADER] == 0 for m in messages)
    # Each one waits for its own token: one minute apart, not all due at once.
    due_s = sorted(score / 1000 for _, score in parked)
    assert due_s[0] - time.time() == pytest.approx(60, abs=10)
    assert due_s[1] - due_s[0] == pytest.approx(60, abs=1)
    assert [t for t, _, _ in starts(rclient)] == [handles[0].id]
    assert rclient.llen("default") == 0


@pytest.mark.usefixtures("rated_app")
async def test_twenty_per_second_holds_across_two_worker_processes(
    start_worker: StartWorker, rclient: redis.Redis
) -> None:
    first = start_worker(APP, "--concurrency", "20")
    second = start_worker(APP, "--concurrency", "20")
    handles = await ratelimited.tick.apush_many([((i,), {}) for i in range(200)])
    results = [await h.aresult(timeout=90) for h in handles]
    assert results == list(range(200))  # none lost
    runs = starts(rclient)
    assert sorted(t for t, _, _ in runs) == sorted(h.id for h in handles)  # each ran once
    workers = {w for _, w, _ in runs}
    assert len(workers) == 2, "both processes share the one global limit"
    times = sorted(at for _, _, at in runs)
    # 200 tokens at 20/s: the last is due 199 × 50 ms after the first.
    assert times[-1] - times[0] >= 9.5
    # No one-second window holds much more than 20 starts (the pump moves due
    # messages every 0.2 s, so a few more may start together; unlimited, all 200 would).
    busiest = max(sum(1 for t in times if start <= t < start + 1.0) for start in times)
    assert busiest <= 30
    assert first.process.poll() is None and second.process.poll() is None
