"""The core contract on a real 3-master Redis Cluster, with queues on different shards.

Push, fetch and ack; results (read by Celery's own client too); idempotency; admission;
rate limits; the DLQ; Phoenix after ``kill -9``; the outbox that carries a settle's
writes beyond its queue's slot; and the one-line refusals of what a cluster cannot hold.
"""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import msgspec
import pytest
import redis
from redis.cluster import ClusterNode, RedisCluster

import relier as relier_api
from relier import AdmissionRejectedError, App, ConfigurationError, TaskFailed
from relier.embedded import free_port
from relier.store import keys, outbox, runner, schedules
from relier.store.broker import Broker, Outgoing
from relier.store.clients import async_client
from relier.store.cluster import parse_cluster_url
from tests.conftest import FAST, StartWorker, pointed_at
from tests.polling import poll
from tests.taskapps import sharded
from tests.test_lock import take_turns
from tests.topologies import Cluster

APP = "tests.taskapps.sharded:app"
QUEUES = (sharded.ALPHA, sharded.BETA, sharded.GAMMA)
#: Workers consume the three queues and the recovery lane (Phoenix's re-queue).
CONSUME = ",".join([*QUEUES, keys.REQUEUE_QUEUE])


def cluster_url(cluster: Cluster) -> str:
    return "redis+cluster://" + ",".join(f"{h}:{p}" for h, p in cluster.startup_nodes)


@pytest.fixture
def url(redis_cluster: Cluster) -> str:
    """The cluster's URL, every node flushed (a cluster has one database), and the task
    app's settings back to the defaults a test may have changed."""
    for _, port in redis_cluster.startup_nodes:
        with redis.Redis(port=port) as node:
            node.flushall()
    address = cluster_url(redis_cluster)
    sharded.app.configure(redis_url=address, queue_limits={}, replica_acks=0)
    return address


@pytest.fixture
def rc(redis_cluster: Cluster) -> Iterator[RedisCluster]:
    client = RedisCluster(startup_nodes=[ClusterNode(h, p) for h, p in redis_cluster.startup_nodes])
    yield client
    client.close()


@pytest.fixture
async def app(url: str) -> AsyncIterator[None]:
    async with pointed_at(url, sharded.app):
        yield


def outboxes_empty(rc: RedisCluster, *queues: str) -> None:
    """Every settle's outbox entry is cleared (just after its effects: a result may be
    read a moment before its entry goes)."""
    poll(lambda: all(rc.llen(keys.outbox(q)) == 0 for q in queues), 10, "empty outboxes")


def relier(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "relier", *args, "--redis-url", url],
                          capture_output=True, text=True, timeout=60)


def test_each_queue_keeps_all_its_keys_on_its_own_shard(
    redis_cluster: Cluster, rc: RedisCluster
) -> None:
    shards = {}
    for queue in QUEUES:
        slot = rc.keyslot(queue)
        names = [*keys.queue_lists(queue), keys.processing(queue, "w1"), keys.stats(queue),
                 keys.delayed(queue), keys.deferred(queue), keys.dead_letters(queue),
                 keys.dlq_reasons(queue), keys.outbox(queue),
                 keys.idempotency("t", "k", queue)]
        assert {rc.keyslot(name) for name in names} == {slot}, queue
        shards[queue] = redis_cluster.node_for_slot(slot)
    assert len(set(shards.values())) == 3, f"queues share a shard: {shards}"


@pytest.mark.usefixtures("app")
def test_push_run_and_results_across_three_shards(
    start_worker: StartWorker, url: str, rc: RedisCluster
) -> None:
    start_worker(APP, url=url, queues=CONSUME)
    handles = [sharded.add.push(2, 3), sharded.echo.push("hi"), sharded.tick.push(7)]
    assert [h.result(timeout=20) for h in handles] == [5, "hi", 7]
    outboxes_empty(rc, *QUEUES)
    for queue in QUEUES:
        assert rc.llen(queue) == 0
        assert int(rc.hget(keys.stats(queue), "fetched") or 0) >= 1


@pytest.mark.usefixtures("app")
def test_celery_reads_the_results(start_worker: StartWorker, url: str,
                                  redis_cluster: Cluster, rc: RedisCluster) -> None:
    from tests.taskapps.interop_celery import make_app

    start_worker(APP, url=url, queues=CONSUME)
    good, bad = sharded.add.push(20, 22), sharded.fail.push("no")
    assert good.result(timeout=20) == 42
    with pytest.raises(TaskFailed):
        bad.result(timeout=20)
    # Celery has no cluster client of its own: its Redis backend is handed one.
    host, port = redis_cluster.startup_nodes[0]
    celery = make_app(f"redis://{host}:{port}/0", main="cluster_reader")
    celery.backend.client = rc
    assert celery.AsyncResult(good.id).state == "SUCCESS"
    assert celery.AsyncResult(good.id).result == 42
    failed = celery.AsyncResult(bad.id)
    assert failed.state == "FAILURE"
    assert "no" in str(failed.result)


@pytest.mark.usefixtures("app")
def test_an_idempotent_call_runs_once_and_replays_its_result(
    start_worker: StartWorker, url: str, rc: RedisCluster
) -> None:
    start_worker(APP, url=url, queues=CONSUME)
    first = sharded.charge.push("o-17", 500)
    assert first.result(timeout=20) == {"order": "o-17", "cents": 500}
    again = sharded.charge.push("o-17", 500)
    assert again.result(timeout=20) == {"order": "o-17", "cents": 500}
    assert rc.get("test:charges:{o-17}") == b"1", "the card was charged once"
    records = [k for k in rc.scan_iter(match="relier:q:{beta}:idem:*")]
    assert len(records) == 1
    assert rc.hget(records[0], "state") == b"succeeded"


async def test_admission_refuses_a_full_queue(url: str) -> None:
    async with pointed_at(url, sharded.app):
        sharded.app.configure(redis_url=url, queue_limits={sharded.ALPHA: 2})
        await sharded.add.apush(1, 1)
        await sharded.add.apush(1, 2)
        with pytest.raises(AdmissionRejectedError) as refused:
            await sharded.add.apush(1, 3)
        assert refused.value.queue == sharded.ALPHA
        # The other shards' queues are not limited.
        await sharded.echo.apush("still fine")


@pytest.mark.usefixtures("app")
def test_the_rate_limit_spaces_runs_across_the_cluster(
    start_worker: StartWorker, url: str, rc: RedisCluster
) -> None:
    start_worker(APP, url=url, queues=CONSUME)
    handles = sharded.tick.push_many([((i,), {}) for i in range(10)])
    assert [h.result(timeout=60) for h in handles] == list(range(10))
    assert rc.exists(keys.rate_limit("sharded.tick")), "one global bucket, on the cluster"
    starts = sorted(float(t) for t in rc.lrange(sharded.TICK_STARTS, 0, -1))
    # 10 tokens at 5/s: the last is due 9 x 200 ms after the first (unlimited, all ten
    # would start within a few milliseconds).
    assert len(starts) == 10
    assert starts[-1] - starts[0] >= 1.5


@pytest.mark.usefixtures("app")
def test_a_failure_lands_in_its_queues_dlq_and_replays(
    start_worker: StartWorker, url: str, rc: RedisCluster
) -> None:
    start_worker(APP, url=url, queues=CONSUME)
    failed = sharded.fail.push("kaput")
    with pytest.raises(TaskFailed):
        failed.result(timeout=20)
    assert rc.llen(keys.dead_letters(sharded.BETA)) == 1
    assert rc.hget(keys.dlq_reasons(sharded.BETA), "exception") == b"1"
    listed = relier(url, "dlq", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    entries = json.loads(listed.stdout)
    assert [e["task_id"] for e in entries] == [failed.id]
    assert entries[0]["queue"] == sharded.BETA


@pytest.mark.usefixtures("app")
def test_phoenix_reruns_a_killed_workers_task_on_another(
    start_worker: StartWorker, url: str, rc: RedisCluster
) -> None:
    victim = start_worker(APP, url=url, queues=CONSUME, env=FAST)
    handle = sharded.stalls_once.push("k1")
    poll(lambda: rc.get("test:started:{k1}"), 20, "the first run to start")
    rescuer = start_worker(APP, url=url, queues=CONSUME, env=FAST)
    victim.kill()
    assert handle.result(timeout=60) == 2, "the task ran again after its worker died"
    assert rescuer.process.poll() is None
    outboxes_empty(rc, sharded.ALPHA, keys.REQUEUE_QUEUE)


async def test_the_outbox_sweep_applies_what_a_stopped_settler_left(
    url: str, rc: RedisCluster
) -> None:
    broker = Broker(async_client(url))
    try:
        assert broker.cluster
        queue = sharded.ALPHA
        processing = keys.processing(queue, "gone-worker")
        rc.lpush(processing, b"the message")
        stored = b'{"status": "SUCCESS"}'
        effects: list[outbox.Effect] = [outbox.Store(keys.result("t-1"), stored, 60)]
        fenced = outbox.Fenced.of(queue=queue, processing=processing, raw=b"the message",
                                  effects=effects)
        # The fence lands and the settler stops before applying its entry.
        assert await runner.run(broker.client, fenced.call) == 1
        assert rc.llen(processing) == 0 and rc.llen(keys.outbox(queue)) == 1
        assert await broker.sweep_outbox(queue) == 0, "too young: its settler may be at it"
        later = outbox.SWEEP_AFTER_MS + 1 + int(msgspec.msgpack.decode(
            rc.lindex(keys.outbox(queue), 0))[0])
        assert await outbox.sweep(broker.client, queue, now_ms=later) == 1
        assert rc.get(keys.result("t-1")) == stored
        assert rc.llen(keys.outbox(queue)) == 0
        # A zombie's fence writes nothing: its message is gone.
        assert await runner.run(broker.client, fenced.call) == 0
        assert rc.llen(keys.outbox(queue)) == 0
        # Hostile bytes in an outbox are removed, not applied, and the sweep goes on.
        rc.rpush(keys.outbox(queue), b"\xc1 not msgpack")
        assert await outbox.sweep(broker.client, queue, now_ms=later) == 0
        assert rc.llen(keys.outbox(queue)) == 0
    finally:
        await broker.aclose()


def test_a_worker_refuses_a_queue_without_a_hash_tag(url: str) -> None:
    done = subprocess.run([sys.executable, "-m", "relier", "worker", "-A", APP, "-Q", "emails",
                           "--redis-url", url], capture_output=True, text=True, timeout=60)
    assert done.returncode != 0
    lines = [line for line in done.stderr.splitlines() if "hash tag" in line]
    assert lines and "'{emails}'" in lines[0], done.stderr


async def test_a_push_to_a_queue_without_a_hash_tag_is_refused(url: str) -> None:
    async with pointed_at(url, sharded.app):
        with pytest.raises(ConfigurationError, match=r"'\{emails\}'"):
            await sharded.add.options(queue="emails").apush(1, 2)


@pytest.mark.usefixtures("app")
def test_a_chain_and_a_group_cross_shards(start_worker: StartWorker, url: str,
                                          rc: RedisCluster) -> None:
    start_worker(APP, url=url, queues=CONSUME)
    # add runs on {alpha}'s shard, echo (with add's result) on {delta}'s.
    last = relier_api.chain(sharded.add.s(1, 2), sharded.add.s(10), sharded.echo.s()).push()
    assert last.result(timeout=30) == 13
    members = relier_api.group(sharded.add.s(i, i) for i in range(3))
    assert members.push().results(timeout=30) == [0, 2, 4]
    outboxes_empty(rc, *QUEUES)


async def test_a_chord_is_refused_on_a_cluster(url: str, rc: RedisCluster) -> None:
    async with pointed_at(url, sharded.app):
        header = [sharded.add.s(1, 1), sharded.add.s(2, 2)]
        with pytest.raises(ConfigurationError, match="chords are not supported"):
            await relier_api.chord(header, sharded.echo.s()).apush()
    assert all(rc.llen(q) == 0 for q in QUEUES), "nothing of the chord was sent"


@pytest.mark.usefixtures("app")
def test_a_schedule_ticks_on_a_cluster_and_shows_in_the_cli(
    start_worker: StartWorker, url: str, rc: RedisCluster
) -> None:
    start_worker(APP, url=url, queues=CONSUME, env=FAST)
    state = keys.schedule_state("sharded.every_second", sharded.BETA)
    assert rc.keyslot(state) == rc.keyslot(sharded.BETA), "state and queue share a slot"
    poll(lambda: int(rc.hget(state, "sent") or 0) >= 2, 30, "two ticks sent")
    assert rc.hget(state, "leader_token") is not None, "the ticks were fenced by token"
    shown = relier(url, "schedules", "--json")
    assert shown.returncode == 0, shown.stderr
    listed = json.loads(shown.stdout)
    views = {s["name"]: s for s in listed["schedules"]}
    assert views["sharded.every_second"]["sent"] >= 2


async def test_a_stale_leader_cannot_tick_after_a_newer_one(url: str) -> None:
    broker = Broker(async_client(url))
    try:
        def batch() -> Outgoing:
            return Outgoing(queue=sharded.BETA, messages=[(b"{}", f"t-{uuid.uuid4()}")])

        newer = await schedules.tick(broker, holder="w2 7", name="s", tick_ms=2_000,
                                     now_ms=2_000, batch=batch())
        assert newer.status == "sent"
        stale = await schedules.tick(broker, holder="w1 6", name="s", tick_ms=3_000,
                                     now_ms=3_000, batch=batch())
        assert stale.status == "stale", "token 6 after token 7 must be refused"
        assert await schedules.skip(broker, holder="w1 6", name="s", queue=sharded.BETA,
                                    through_ms=4_000, count=1, reason="x") is False
        again = await schedules.tick(broker, holder="w2 7", name="s", tick_ms=2_000,
                                     now_ms=2_500, batch=batch())
        assert again.status == "done", "a tick is recorded once"
    finally:
        await broker.aclose()


@pytest.mark.usefixtures("app")
def test_doctor_says_what_the_cluster_is_and_where_each_queue_lives(
    url: str, rc: RedisCluster, redis_cluster: Cluster
) -> None:
    sharded.add.push(1, 2), sharded.echo.push("x"), sharded.tick.push(1)  # one per queue
    rc.sadd(keys.KNOWN_QUEUES, "emails")  # as a push from an older, cluster-blind release
    done = relier(url, "doctor", "--json")
    checks = {c["name"]: c for c in json.loads(done.stdout)["checks"]}
    cluster = checks["cluster"]
    assert cluster["status"] == "warn", "no master has a replica"
    assert "3 master(s), 0 replica(s), 16384/16384 slots served, state ok" in cluster["detail"]
    shards = dict(part.split(" -> ") for part in checks["queue shards"]["detail"].split("; "))
    for queue in QUEUES:
        port = redis_cluster.node_for_slot(rc.keyslot(queue))
        assert shards[queue] == f"127.0.0.1:{port}", queue
    assert checks["queue names"]["status"] == "warn"
    assert "emails" in checks["queue names"]["detail"]
    assert "'{emails}'" in checks["queue names"]["fix"]


def inspect_json(url: str, *args: str) -> Any:
    done = relier(url, "inspect", *args, "--json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.mark.usefixtures("app")
def test_inspect_sees_every_shard(start_worker: StartWorker, url: str,
                                  rc: RedisCluster) -> None:
    later = sharded.echo.options(countdown=300).push("later")
    waiting = sharded.tick.push_many([((i,), {}) for i in range(3)])
    worker = start_worker(APP, url=url, queues=f"{sharded.ALPHA},{keys.REQUEUE_QUEUE}")
    running = sharded.stalls_once.push("inspect")
    poll(lambda: rc.get("test:started:{inspect}"), 20, "the run to start")
    snap = inspect_json(url)
    queues = {q["name"]: q for q in snap["queues"]}
    assert queues[sharded.GAMMA]["depth"] == 3
    assert queues[sharded.BETA]["delayed"] == 1
    assert queues[sharded.ALPHA]["in_flight"] == 1
    assert [r["task_id"] for r in snap["running"]] == [running.id]
    assert [w["pid"] for w in snap["workers"]] == [worker.pid]
    assert inspect_json(url, "task", later.id)["state"] == "delayed"
    assert inspect_json(url, "task", waiting[0].id)["state"] == "queued"
    report = inspect_json(url, "task", running.id)
    assert report["state"] == "running" and report["queue"] == sharded.ALPHA


async def test_replica_acks_is_refused_on_a_cluster(url: str, rc: RedisCluster) -> None:
    async with pointed_at(url, sharded.app):
        sharded.app.configure(redis_url=url, replica_acks=1)
        with pytest.raises(ConfigurationError, match="replica_acks is not supported"):
            await sharded.add.apush(1, 2)
    assert rc.llen(sharded.ALPHA) == 0, "refused before anything was sent"


@pytest.mark.usefixtures("app")
def test_every_read_and_admin_command_works_on_a_cluster(
    start_worker: StartWorker, url: str, rc: RedisCluster
) -> None:
    worker = start_worker(APP, url=url, queues=CONSUME, env=FAST)
    failed = [sharded.fail.push(f"no {i}") for i in range(2)]
    for handle in failed:
        with pytest.raises(TaskFailed):
            handle.result(timeout=20)
    done = [sharded.add.push(i, i) for i in range(3)]
    assert [h.result(timeout=20) for h in done] == [0, 2, 4]
    waiting = sharded.echo.options(countdown=600).push("later")
    commands = [
        ("inspect",), ("inspect", "task", done[0].id), ("inspect", "task", failed[0].id[:8]),
        ("queues",), ("top", "--once"), ("schedules",), ("health",), ("doctor",),
        ("dlq", "list"), ("dlq", "show", failed[0].id), ("dlq", "replay", failed[0].id),
        ("dlq", "purge", "--yes"), ("revoke", waiting.id), ("purge", sharded.GAMMA, "--yes"),
    ]
    for command in commands:
        result = relier(url, *command)
        assert result.returncode == 0, f"relier {' '.join(command)}:\n{result.stderr}"
        assert "Traceback" not in result.stderr, command
    assert rc.llen(keys.dead_letters(sharded.BETA)) == 0, "replayed one, purged the other"
    assert rc.zscore(keys.REVOKED, waiting.id) is not None
    assert b'"REVOKED"' in rc.get(keys.result(waiting.id)), "Celery's REVOKED state stored"
    assert worker.process.poll() is None


async def test_locks_take_turns_on_a_cluster(url: str, rc: RedisCluster) -> None:
    async with pointed_at(url, sharded.app):
        app = sharded.app
        await take_turns(app, "n{counter}", 10)
        with app.lock("sync-side", ttl=5) as held:  # the blocking face, on the cluster too
            assert held.owned()
    assert not rc.exists(keys.lock("counter"))


@pytest.mark.usefixtures("app")
def test_metrics_and_events_on_a_cluster(start_worker: StartWorker, url: str) -> None:
    port = free_port()
    start_worker(APP, "--metrics-port", str(port), "--events", url=url, queues=CONSUME)
    sharded.tick.options(countdown=600).push(1)
    assert sharded.add.push(1, 2).result(timeout=20) == 3

    delayed = f'relier_queue_delayed{{queue="{sharded.GAMMA}"}} 1.0'

    def scrape() -> str | None:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as reply:
            text = str(reply.read().decode())
        return text if delayed in text else None

    text = poll(scrape, 20, "the queue metrics, read from every shard")
    for queue in QUEUES:
        assert f'relier_queue_depth{{queue="{queue}"}}' in text


@pytest.mark.parametrize(("url", "problem"), [
    ("redis+cluster://127.0.0.1:7000/3", "a cluster has only database 0"),
    ("redis+cluster://127.0.0.1:99999", "invalid port"),
    ("redis+cluster://:7000", "has no host"),
    ("redis+cluster://127.0.0.1:7000?ssl=1", "options are not read here"),
])
def test_a_bad_cluster_url_is_one_line(url: str, problem: str) -> None:
    with pytest.raises(ConfigurationError) as refused:
        App(redis_url=url).settings  # noqa: B018 - reading the settings checks the URL
    assert problem in str(refused.value) and "\n" not in str(refused.value)
    assert "expected like redis+cluster://" in str(refused.value)


def test_a_cluster_url_with_credentials_is_read_and_redacted() -> None:
    target = parse_cluster_url("redis+cluster://app:s3cret@10.0.0.1,10.0.0.2:7001/0")
    assert target.nodes == (("10.0.0.1", 6379), ("10.0.0.2", 7001))
    assert (target.username, target.password) == ("app", "s3cret")
    with pytest.raises(ConfigurationError) as refused:
        parse_cluster_url("redis+cluster://app:s3cret@10.0.0.1/2")
    assert "s3cret" not in str(refused.value)
