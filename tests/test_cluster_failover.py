"""A Redis Cluster master dies during a run: its replica is promoted, and producers and
workers follow it. Measured: how long pushes to the dead master's queue were refused,
and that nothing acknowledged before the kill runs again or is lost."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator

import pytest
from redis.cluster import ClusterNode, RedisCluster

from relier import BrokerUnavailable, TaskHandle
from relier.store import keys
from tests.conftest import FAST, StartWorker, pointed_at
from tests.polling import poll
from tests.taskapps import sharded
from tests.test_cluster import CONSUME, cluster_url
from tests.topologies import Cluster

APP = "tests.taskapps.sharded:app"
#: Failure detection (the node timeout, 3 s) plus the election, with room for a busy machine.
RESUME_BOUND_S = 30


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    started = Cluster(replicas=1).start()
    yield started
    started.close()


@pytest.fixture
async def url(cluster: Cluster) -> AsyncIterator[str]:
    address = cluster_url(cluster)
    sharded.app.configure(queue_limits={}, replica_acks=0)  # whatever another test set
    async with pointed_at(address, sharded.app):
        yield address


def ran(rc: RedisCluster, handle: TaskHandle[int]) -> int:
    return int(rc.get(f"test:ran:{{delta}}:{handle.id}") or 0)


def test_producers_and_workers_follow_a_promoted_replica(
    cluster: Cluster, url: str, start_worker: StartWorker
) -> None:
    rc = RedisCluster(startup_nodes=[ClusterNode(h, p) for h, p in cluster.startup_nodes])
    try:
        worker = start_worker(APP, url=url, queues=CONSUME, env=FAST)
        before = [sharded.counted.push(i) for i in range(20)]
        assert [h.result(timeout=30) for h in before] == list(range(20))
        slot = rc.keyslot(sharded.ALPHA)
        victim = cluster.node_for_slot(slot)
        cluster.server_on(victim).stop(kill=True)
        killed_at = time.monotonic()

        after: list[TaskHandle[int]] = []
        refused = 0
        first_accepted: float | None = None
        while len(after) < 20:
            assert time.monotonic() - killed_at < RESUME_BOUND_S, (
                f"pushes to {sharded.ALPHA} still refused {RESUME_BOUND_S}s after the kill")
            try:
                after.append(sharded.counted.push(100 + len(after)))
                first_accepted = first_accepted or time.monotonic()
            except BrokerUnavailable:
                refused += 1
                time.sleep(0.05)
        promoted = poll(lambda: (p := cluster.serving(slot)) not in (None, victim) and p,
                        30, "a replica to serve the dead master's slots")
        assert [h.result(timeout=60) for h in after] == [100 + i for i in range(20)]
        assert all(ran(rc, h) == 1 for h in before), "an acked task ran again"
        assert all(ran(rc, h) == 1 for h in after)
        assert worker.process.poll() is None, "the worker rode out the failover"
        poll(lambda: rc.llen(keys.outbox(sharded.ALPHA)) == 0, 30, "an empty outbox")
        assert first_accepted is not None
        print(f"\nfailover: node {victim} killed; {promoted} serves slot {slot}; pushes "
              f"resumed after {first_accepted - killed_at:.1f}s ({refused} refused meanwhile)")
    finally:
        rc.close()
