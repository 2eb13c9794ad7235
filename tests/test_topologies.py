"""The multi-server fixtures themselves: the cluster shards keys, the sentinels follow a kill."""

from __future__ import annotations

import time

import redis
from redis.cluster import ClusterNode, RedisCluster

from tests.topologies import SERVICE, Cluster, SentinelSetup


def test_cluster_spreads_keys_over_its_three_masters(redis_cluster: Cluster) -> None:
    nodes = [ClusterNode(host, port) for host, port in redis_cluster.startup_nodes]
    cluster = RedisCluster(startup_nodes=nodes)
    try:
        ports = {}
        for name in ("{a}", "{b}", "{c}", "{d}", "{e}", "{f}"):
            slot = cluster.keyslot(f"relier:{name}:probe")
            ports[name] = redis_cluster.node_for_slot(slot)
            cluster.set(f"relier:{name}:probe", name)
        assert len(set(ports.values())) == 3, ports
        for name, port in ports.items():
            node = redis.Redis(host="127.0.0.1", port=port)
            try:
                assert node.get(f"relier:{name}:probe") == name.encode()  # held by that shard
            finally:
                node.close()
    finally:
        cluster.close()


def test_sentinels_report_the_master(sentinel_setup: SentinelSetup) -> None:
    assert sentinel_setup.master_port() == sentinel_setup.master.port


def test_sentinels_promote_the_replica_when_the_master_is_killed(
        fresh_sentinel_setup: SentinelSetup) -> None:
    setup = fresh_sentinel_setup
    old, killed_at = setup.kill_master()
    new = setup.wait_failover(old)
    took = time.monotonic() - killed_at
    assert new == setup.replica.port
    promoted = redis.Redis(host="127.0.0.1", port=new, decode_responses=True)
    try:
        assert promoted.info("replication")["role"] == "master"
        assert promoted.set("after-failover", "1")  # writable now
    finally:
        promoted.close()
    print(f"failover of {SERVICE} took {took:.2f}s (down-after-milliseconds 1000)")
