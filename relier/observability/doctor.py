"""`relier doctor`: check the Redis a deployment points at, and say what to fix.

Each check reads what it needs (``INFO`` first, ``CONFIG GET`` only where INFO does not
say, since managed services often disable CONFIG) and returns one :class:`Check` with a
status: ``ok``, ``info`` (worth knowing, nothing to fix), ``warn`` (a risk to fix) or
``fail`` (Relier cannot work). Nothing here writes to Redis.
"""

from __future__ import annotations

import statistics
import time
from typing import Any, Final

import msgspec

from relier.observability.inspect import (
    CELERY_DEFAULT_QUEUE,
    SILENT,
    Inspector,
    QueueStats,
    WorkerView,
)
from relier.protocol.queues import REQUEUE_QUEUE, SUSPECT_QUEUE
from relier.store import server, views
from relier.store.clients import SyncClient
from relier.store.cluster import ClusterView, hash_tag
from relier.store.connections import SentinelView

OK: Final = "ok"
INFO: Final = "info"
WARN: Final = "warn"
FAIL: Final = "fail"
#: Warnings that make `relier doctor` exit 1, like failures: tasks can be lost.
SERIOUS_WARNINGS: Final = frozenset({"maxmemory-policy", "memory"})
#: Oldest Redis that has every command Relier uses (LMOVE, BLMOVE, ZRANGE ... BYSCORE).
MIN_VERSION: Final = (6, 2)
#: A median PING above this is slow for a task broker (every fetch and ack pays it).
SLOW_PING_MS: Final = 5.0
#: Used memory above this share of ``maxmemory`` is close to refusing writes.
MEMORY_WARN_RATIO: Final = 0.8


class Check(msgspec.Struct, kw_only=True):
    """One finding: what was checked, what was found, and what to do about it."""

    name: str
    status: str
    detail: str
    fix: str = ""


class Diagnosis(msgspec.Struct, kw_only=True):
    url: str
    checks: list[Check]

    @property
    def healthy(self) -> bool:
        """No warning and no failure."""
        return all(c.status in (OK, INFO) for c in self.checks)

    @property
    def problems(self) -> list[str]:
        """Checks that need fixing before anything else: every failure, and the warnings
        about losing tasks (eviction, memory nearly full). The other warnings (no
        persistence, no worker yet) are normal on a development Redis."""
        return [c.name for c in self.checks
                if c.status == FAIL or (c.status == WARN and c.name in SERIOUS_WARNINGS)]


def diagnose(client: SyncClient, url: str, *, stuck_after_s: float = 300.0,
             pings: int = 20, sentinel: SentinelView | None = None,
             cluster: ClusterView | None = None) -> Diagnosis:
    """Run every check against ``client`` (``url`` is only reported, already redacted);
    with ``sentinel`` (what the URL's sentinels said) or ``cluster`` (what the cluster
    says of itself), the topology checks too. On a cluster, the server checks (version,
    memory, persistence...) read the node the client asks first."""
    info = server.info_sync(client)
    inspector = Inspector(client)
    queues = inspector.queues()
    workers = inspector.workers()
    checks = [
        _version(info),
        *(_sentinel_checks(sentinel, info) if sentinel is not None else []),
        *(_cluster_checks(cluster, queues) if cluster is not None else []),
        _eviction(info),
        _memory(info),
        _persistence(info, client),
        _latency(client, pings),
        _scripts(client),
        _workers(workers, queues),
        *_queues(queues, workers, client, stuck_after_s),
    ]
    return Diagnosis(url=url, checks=checks)


def _version(info: dict[str, Any]) -> Check:
    text = str(info.get("valkey_version") or info.get("redis_version", "0"))
    server = "Valkey" if "valkey_version" in info else "Redis"
    found = tuple(int(p) for p in str(info.get("redis_version", "0")).split(".")[:2]
                  if p.isdigit())
    if found < MIN_VERSION:
        return Check(name="version", status=FAIL, detail=f"{server} {text}",
                     fix="Relier needs Redis 6.2 or newer (LMOVE, BLMOVE); upgrade the server")
    return Check(name="version", status=OK, detail=f"{server} {text}")


def _eviction(info: dict[str, Any]) -> Check:
    policy = str(info.get("maxmemory_policy", "unknown"))
    if policy == "noeviction":
        return Check(name="maxmemory-policy", status=OK,
                     detail="noeviction: a full Redis refuses writes instead of dropping keys")
    return Check(
        name="maxmemory-policy", status=WARN,
        detail=f"{policy}: under memory pressure Redis deletes keys to make room, and "
               f"queued tasks, processing lists, fences and results are keys; tasks "
               f"vanish without an error",
        fix="CONFIG SET maxmemory-policy noeviction (and set it in redis.conf or your "
            "provider's parameter group); use queue limits to keep the broker from filling",
    )


def _memory(info: dict[str, Any]) -> Check:
    used, limit = int(info.get("used_memory", 0)), int(info.get("maxmemory", 0))
    human = info.get("used_memory_human", f"{used} B")
    if not limit:
        return Check(name="memory", status=INFO,
                     detail=f"{human} used; no maxmemory (bounded only by the host)")
    ratio = used / limit
    detail = f"{human} of {info.get('maxmemory_human', limit)} ({ratio:.0%})"
    if ratio >= MEMORY_WARN_RATIO:
        return Check(name="memory", status=WARN, detail=detail,
                     fix="raise maxmemory, drain the queues, or lower queue limits: at the "
                         "limit Redis refuses pushes (noeviction) or drops keys (eviction)")
    return Check(name="memory", status=OK, detail=detail)


def _persistence(info: dict[str, Any], client: SyncClient) -> Check:
    for field in ("aof_last_write_status", "rdb_last_bgsave_status"):
        if str(info.get(field, "ok")) != "ok":
            return Check(name="persistence", status=FAIL,
                         detail=f"{field} is {info[field]}: Redis cannot write to disk",
                         fix="check the server's disk space and permissions, and its log")
    if int(info.get("aof_enabled", 0)):
        fsync = server.config_sync(client, "appendfsync")
        if fsync == "no":
            return Check(name="persistence", status=WARN,
                         detail="AOF on, appendfsync no: a host crash loses what the OS "
                                "had not flushed",
                         fix="CONFIG SET appendfsync everysec")
        return Check(name="persistence", status=OK,
                     detail=f"AOF on (appendfsync {fsync or 'unknown'})")
    save = server.config_sync(client, "save")
    if save:
        return Check(name="persistence", status=WARN,
                     detail=f"RDB snapshots only (save {save!r}): a restart loses every "
                            f"task queued since the last snapshot",
                     fix="CONFIG SET appendonly yes (appendfsync everysec)")
    if save is None:
        return Check(name="persistence", status=WARN,
                     detail="AOF off, and CONFIG is not allowed, so snapshots are unknown",
                     fix="turn on AOF (appendonly yes) in your provider's settings")
    return Check(name="persistence", status=WARN,
                 detail="no persistence at all: a restart loses every queued task",
                 fix="CONFIG SET appendonly yes (appendfsync everysec)")


def _latency(client: SyncClient, pings: int) -> Check:
    times = [server.ping_sync(client) for _ in range(pings)]
    median, worst = statistics.median(times), max(times)
    detail = f"PING median {median:.2f} ms, max {worst:.2f} ms over {pings}"
    if median > SLOW_PING_MS:
        return Check(name="latency", status=WARN, detail=detail,
                     fix="put workers near Redis (same zone); every fetch and ack pays a "
                         "round trip")
    return Check(name="latency", status=OK, detail=detail)


def _scripts(client: SyncClient) -> Check:
    cached = server.cached_scripts_sync(client)
    missing = cached.missing
    if not missing:
        return Check(name="scripts", status=OK,
                     detail=f"all {cached.total} of Relier's scripts are loaded")
    if len(missing) == cached.total:
        return Check(name="scripts", status=INFO,
                     detail="none loaded: no worker has connected since Redis started "
                            "(workers load them at start)")
    return Check(name="scripts", status=INFO,
                 detail=f"not loaded: {', '.join(missing)} (an older worker version, or "
                        f"a restart; workers reload them after NOSCRIPT)")


def _workers(workers: list[WorkerView], queues: list[QueueStats]) -> Check:
    alive = [w for w in workers if w.state == "alive"]
    silent = [w for w in workers if w.state == SILENT]
    dead = [w for w in workers if w.state == "dead"]
    counts = f"{len(alive)} alive, {len(silent)} silent, {len(dead)} dead"
    if silent and not alive:
        return Check(name="workers", status=WARN, detail=counts,
                     fix="no live worker is left to resurrect the silent ones' tasks; "
                         "start a worker")
    if not alive:
        waiting = sum(q.depth for q in queues)
        if waiting:
            return Check(name="workers", status=WARN,
                         detail=f"no worker alive, {waiting} message(s) waiting",
                         fix="start `relier worker` for these queues")
        return Check(name="workers", status=INFO, detail="no worker registered")
    return Check(name="workers", status=OK, detail=counts)


def _queues(queues: list[QueueStats], workers: list[WorkerView], client: SyncClient,
            stuck_after_s: float) -> list[Check]:
    consumed = {q for w in workers if w.state == "alive" for q in w.queues}
    found: list[Check] = []
    now_ms = int(time.time() * 1000)
    overdue_ms = now_ms - 60_000
    overdue = views.overdue_sync(client, [q.name for q in queues], overdue_ms)
    for q, late in zip(queues, overdue, strict=True):
        name = f"queue {q.name}"
        if q.depth and q.name not in consumed:
            found.append(Check(name=name, status=WARN,
                               detail=f"{q.depth} message(s) waiting and no live worker "
                                      f"consumes it",
                               fix=f"start a worker with -Q {q.name}" + (
                                   " (Celery's default queue: send_task/delay without a "
                                   "queue go there)" if q.name == CELERY_DEFAULT_QUEUE
                                   else "")))
        elif q.oldest_age is not None and q.oldest_age > stuck_after_s:
            found.append(Check(name=name, status=WARN,
                               detail=f"the next message has waited {q.oldest_age:.0f}s",
                               fix="add workers or concurrency, or look for tasks that "
                                   "hold every slot (`relier inspect`)"))
        elif int(late):
            found.append(Check(name=name, status=WARN,
                               detail=f"{int(late)} delayed message(s) overdue by more "
                                      f"than a minute",
                               fix=f"start a worker with -Q {q.name}: the workers that "
                                   f"consume a queue move its due messages"))
    if not found:
        stuck = "none" if queues else "no queues yet"
        found.append(Check(name="queues", status=OK,
                           detail=f"{len(queues)} queue(s), stuck: {stuck}"))
    dlq = {q.name: q.dlq for q in queues if q.dlq}
    if dlq:
        found.append(Check(name="dlq", status=INFO,
                           detail=", ".join(f"{n}: {c}" for n, c in sorted(dlq.items())),
                           fix="`relier dlq list` to see why, `relier dlq replay` to retry"))
    return found


def _sentinel_checks(view: SentinelView, info: dict[str, Any]) -> list[Check]:
    return [_sentinel(view), _replication(view, info)]


def _sentinel(view: SentinelView) -> Check:
    replicas = ", ".join(view.replicas) or "none"
    detail = (f"service {view.service}: master {view.master or 'unknown'}, "
              f"{len(view.replicas)} replica(s) ({replicas}), {view.sentinels} sentinel(s), "
              f"quorum {view.quorum}; asked {view.asked}")
    if view.master is None or "(down)" in view.master:
        return Check(name="sentinel", status=FAIL, detail=detail,
                     fix="the sentinels know no live master for this service: check the "
                         "service name and the servers")
    if not view.replicas or view.sentinels < 3:
        return Check(name="sentinel", status=WARN, detail=detail,
                     fix="a failover needs a replica to promote and a majority of at least "
                         "three sentinels on separate hosts")
    return Check(name="sentinel", status=OK, detail=detail)


def _replication(view: SentinelView, info: dict[str, Any]) -> Check:
    """Always a warning: asynchronous replication is a window a failover can lose."""
    lag = _replica_lag_bytes(info)
    now = f"a replica last confirmed {lag} byte(s) behind; " if lag is not None else ""
    down = f"{view.down_after_ms} ms" if view.down_after_ms is not None else "unknown"
    return Check(
        name="replication", status=WARN,
        detail=f"asynchronous: {now}a failover loses what the master acknowledged but had "
               f"not yet sent to the replica it promotes (pushes, acks, results of the last "
               f"moments); clients follow the new master after down-after-milliseconds "
               f"({down}) plus an election",
        fix="set replica_acks=1 (RELIER_REPLICA_ACKS) so a push returns only once a replica "
            "has it; a lost ack makes the task run again (at-least-once, fenced)")


def _replica_lag_bytes(info: dict[str, Any]) -> int | None:
    offset = info.get("master_repl_offset")
    replicas = [v for k, v in info.items() if k.startswith("slave") and isinstance(v, dict)]
    offsets = [int(r["offset"]) for r in replicas if str(r.get("offset", "")).isdigit()]
    if not isinstance(offset, int) or not offsets:
        return None
    return max(0, offset - min(offsets))


def _cluster_checks(view: ClusterView, queues: list[QueueStats]) -> list[Check]:
    return [_cluster(view), *_placement(view, queues)]


def _cluster(view: ClusterView) -> Check:
    replicas = sum(len(s.replicas) for s in view.shards)
    detail = (f"{len(view.shards)} master(s), {replicas} replica(s), "
              f"{view.slots_ok}/16384 slots served, state {view.state}: "
              + "; ".join(f"{s.address} ({s.slots} slots, "
                          f"{len(s.replicas)} replica(s){'' if s.up else ', DOWN'})"
                          for s in view.shards))
    if view.state != "ok" or view.slots_ok < 16384:
        return Check(name="cluster", status=FAIL, detail=detail,
                     fix="every slot needs a live master: bring the failed master back, "
                         "promote its replica, or assign the missing slots")
    if any(not s.replicas for s in view.shards):
        return Check(name="cluster", status=WARN, detail=detail,
                     fix="a master without a replica takes its slots, and the queues in them, "
                         "offline when it dies: give each master a replica")
    return Check(name="cluster", status=OK, detail=detail)


def _placement(view: ClusterView, queues: list[QueueStats]) -> list[Check]:
    """Which shard each known queue lives on, and the queues a cluster cannot hold."""
    found = []
    untagged = [q.name for q in queues if hash_tag(q.name) is None
                and q.name not in (REQUEUE_QUEUE, SUSPECT_QUEUE)]
    if untagged:
        found.append(Check(
            name="queue names", status=WARN,
            detail=f"no hash tag: {', '.join(untagged)} (their priority lists and Relier's "
                   "keys for them sit in different slots; workers and pushes refuse them)",
            fix=f"name them with a tag, like '{{{untagged[0]}}}' (see the Scaling guide)"))
    placed = []
    for queue in queues:
        shard = view.shard_of(queue.name)
        placed.append(f"{queue.name} -> {shard.address if shard else 'no master'}")
    if placed:
        found.append(Check(name="queue shards", status=INFO, detail="; ".join(placed),
                           fix="one queue lives on one shard: spread load with more queues"))
    return found
