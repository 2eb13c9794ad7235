"""The store's plain reads against the real test server: typed replies, and hostile bytes
read back as unreadable or absent, never a crash."""

from __future__ import annotations

import redis

from relier.protocol import registry
from relier.protocol.registry import RunningTask, WorkerInfo
from relier.store import finder, keys, keyspace, results, server, views
from relier.store import registry as registry_store


def _info(worker_id: str) -> WorkerInfo:
    return WorkerInfo(id=worker_id, host="h", pid=1, queues=["q"], concurrency=1,
                      started_at=1.0, last_heartbeat=2.0)


def test_registry_reads_skip_and_count_what_does_not_decode(rclient: redis.Redis) -> None:
    rclient.hset(keys.WORKERS, "w1", registry.encode(_info("w1")))
    rclient.hset(keys.WORKERS, "w2", b"\xff not json")
    rclient.hset(keys.WORKERS, "w3", b'{"id": 3}')
    found = registry_store.entries_sync(rclient)
    assert [w.id for w in found.workers] == ["w1"] and found.unreadable == 2
    assert registry_store.entry_sync(rclient, "w2") is None
    assert registry_store.entry_sync(rclient, "gone") is None


def test_the_heartbeat_writes_read_back(rclient: redis.Redis) -> None:
    info = _info("w1")
    table = [RunningTask(task_id="t1", task="x", queue="q", started_at=1.0)]
    registry_store.beat_sync(rclient, info, ttl_ms=10_000, running=table)
    assert registry_store.beating_sync(rclient, ["w1", "w2"]) == [True, False]
    assert registry_store.running_tables_sync(rclient, ["w1"])["w1"] == table
    rclient.set(keys.running("w1"), b"[{not a table")
    assert registry_store.running_tables_sync(rclient, ["w1", "w2"]) == {"w1": [], "w2": []}
    registry_store.flatline_sync(rclient, "w1")
    assert registry_store.beating_sync(rclient, ["w1"]) == [False]
    registry_store.deregister_sync(rclient, "w1")
    assert registry_store.entries_sync(rclient).workers == []


def test_counters_and_dlq_counts_leave_out_what_is_not_a_number(rclient: redis.Redis) -> None:
    rclient.hset(keys.stats("q"), mapping={"fetched": "3", "rate": "2.5", "junk": "x\xff"})
    assert views.queue_counters_sync(rclient, ["q"]) == {"q": {"fetched": 3, "rate": 2}}
    rclient.lpush(keys.dead_letters("q"), b"entry")
    rclient.hset(keys.dlq_reasons("q"), mapping={"expired": "1", "garbage": "one"})
    count = views.dead_letter_count_sync(rclient, "q")
    assert count == views.DeadLetterCount(1, {"expired": 1}) and count.consistent
    assert views.dead_letter_entries_sync(rclient, "q") == [b"entry"]
    assert views.dead_letter_sizes_sync(rclient, ["q", "empty"]) == [1, 0]


def test_queue_readings_in_one_round_trip(rclient: redis.Redis) -> None:
    rclient.lpush("q", b"newer", b"newest")
    rclient.lpush(keys.queue_list("q", 9), b"urgent")
    rclient.zadd(keys.delayed("q"), {b"later": 1})
    rclient.lpush(keys.processing("q", "w1"), b"held")
    (reading,) = views.queue_readings_sync(rclient, {"q": ["w1", "w2"]})
    assert (reading.depth, reading.delayed, reading.in_flight, reading.dlq) == (3, 1, 1, 0)
    assert reading.heads == [b"newer", None, None, b"urgent"]
    assert views.waiting_sync(rclient, "q") == 3
    assert views.waiting_sync(rclient, "q", delayed=True) == 4
    assert views.overdue_sync(rclient, ["q"], 2) == [1]


def test_the_one_scan_takes_its_prefix_literally(rclient: redis.Redis) -> None:
    for task_id in ("ab*1", "ab*2", "abc", "zz"):
        rclient.set(keys.result(task_id), b"{}")
    assert sorted(results.ids_starting_sync(rclient, "ab*")) == ["ab*1", "ab*2"]
    assert sorted(keyspace.scan_sync(rclient, keys.result(""), "a")) == [
        keys.result("ab*1"), keys.result("ab*2"), keys.result("abc")]
    assert results.stored_many_sync(rclient, ["abc", "none"]) == [b"{}", None]
    assert results.stored_many_sync(rclient, []) == []


def test_the_finder_searches_a_place_slice_by_slice(rclient: redis.Redis) -> None:
    rclient.rpush("q", *[f"other-{i}".encode() for i in range(7)], b"has task-42 in it")
    (hit,) = finder.hits(rclient, finder.queue_lists("q")[0], "task-42", slice_size=3)
    assert (hit.index, hit.element) == (7, b"has task-42 in it")
    assert list(finder.hits(rclient, finder.delayed("q"), "task-42")) == []
    assert finder.length_sync(rclient, finder.queue_lists("q")[0]) == 8


def test_server_facts(rclient: redis.Redis) -> None:
    assert server.ping_sync(rclient) >= 0
    assert "redis_version" in server.info_sync(rclient)
    assert server.config_sync(rclient, "no-such-setting") is None
    rclient.script_flush()
    cached = server.cached_scripts_sync(rclient)
    assert cached.total > 0 and len(cached.missing) == cached.total
