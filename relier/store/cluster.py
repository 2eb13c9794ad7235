"""Redis Cluster: its URL, its clients, and what the store must do differently there.

A cluster URL names one or more nodes to discover the cluster from::

    redis+cluster://[[USER]:PASSWORD@]HOST[:PORT][,HOST[:PORT]...][/0]

A cluster has one database, so the path is empty or ``/0``. redis-py's ``RedisCluster``
asks the nodes for the slot map and sends each command to the node serving its key.

A Lua script may only touch keys of one hash slot. Relier's scripts work on one queue at
a time, and every key of queue ``q`` hashes like ``q``'s own list, so on a cluster a queue
name must carry a hash tag (``{emails}``): then kombu's priority lists (``{emails}\\x06\\x163``
...) and Relier's ``relier:q:{emails}:...`` keys share its slot. What a delivery does beyond
its queue's slot (a result, an idempotency record, a follow-up on another queue) goes
through the queue's outbox (:mod:`relier.store.outbox`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, Final, cast

import redis
import redis.asyncio as aioredis
import redis.asyncio.cluster as aiocluster
import redis.cluster
from redis.crc import key_slot

from relier.errors import ConfigurationError
from relier.store import addresses
from relier.store.keys import hash_tag as hash_tag

CLUSTER_SCHEME: Final = "redis+cluster"
CLUSTER_EXAMPLE: Final = "redis+cluster://127.0.0.1:7000,127.0.0.1:7001"
DEFAULT_PORT: Final = 6379


@dataclass(frozen=True, slots=True)
class ClusterTarget:
    """What a cluster URL says: nodes to start discovery from, and the credentials."""

    nodes: tuple[tuple[str, int], ...]
    username: str | None = None
    password: str | None = None


def is_cluster_url(url: str) -> bool:
    """Whether ``url`` uses the ``redis+cluster://`` scheme."""
    return url.lower().startswith(CLUSTER_SCHEME + "://")


def parse_cluster_url(url: str) -> ClusterTarget:
    """Read a ``redis+cluster://`` URL; ``ConfigurationError`` (one line) when it is wrong."""
    rest = url.split("://", 1)[1]
    credentials, _, location = rest.rpartition("@")
    location, _, query = location.partition("?")
    hosts, _, path = location.partition("/")
    if query:
        raise _refuse(url, f"options are not read here (?{query}); pass them to the App")
    if path.strip("/") not in ("", "0"):
        raise _refuse(url, f"a cluster has only database 0, not /{path.strip('/')}")
    username, password = addresses.credentials(credentials)
    return ClusterTarget(nodes=tuple(_address(url, item) for item in hosts.split(",")),
                         username=username, password=password)


def _refuse(url: str, problem: str) -> ConfigurationError:
    from relier.store.connections import redact  # one redaction rule for every URL
    return ConfigurationError(
        f"cluster URL {redact(url)!r}: {problem} (expected like {CLUSTER_EXAMPLE})")


def _address(url: str, item: str) -> tuple[str, int]:
    try:
        return addresses.host_and_port(item, DEFAULT_PORT)
    except ValueError as problem:
        raise _refuse(url, f"node address {item!r} {problem}") from None


def sync_client(url: str, **options: Any) -> redis.Redis:
    """A blocking cluster client.

    Typed as ``redis.Redis``: ``RedisCluster`` offers the same command methods, and the
    few things that differ (scripts in a pipeline, SCAN, which node to ask) are the
    store's to handle, behind :func:`is_cluster`.
    """
    target = parse_cluster_url(url)
    client = redis.cluster.RedisCluster(
        startup_nodes=[redis.cluster.ClusterNode(h, p)  # type: ignore[no-untyped-call]
                       for h, p in target.nodes],
        username=target.username, password=target.password, **options)
    return cast(redis.Redis, client)


def async_client(url: str, **options: Any) -> aioredis.Redis:
    """The async twin of :func:`sync_client`."""
    target = parse_cluster_url(url)
    client = aiocluster.RedisCluster(
        startup_nodes=[aiocluster.ClusterNode(h, p) for h, p in target.nodes],
        username=target.username, password=target.password, **options)
    return cast(aioredis.Redis, client)


#: Both faces of redis-py's cluster client (a tuple: ``isinstance`` with a ``X | Y`` union
#: builds the union on every call, and this is asked on every push and settle batch).
_CLUSTER_CLIENTS: Final = (redis.cluster.RedisCluster, aiocluster.RedisCluster)


def is_cluster(client: object) -> bool:
    """Whether ``client`` talks to a cluster (either face)."""
    return isinstance(client, _CLUSTER_CLIENTS)


@asynccontextmanager
async def subscriber(client: aioredis.Redis, channel: str) -> AsyncIterator[aioredis.Redis]:
    """A client of its own for a subscription, on the node serving ``channel``'s slot.

    PUBLISH on a cluster reaches the subscribers of every node, so any node will do. A
    connection of its own, because redis-py's async cluster pub/sub borrows one from the
    node's shared pool, and a connection that was subscribed and handed back there was
    seen to break the next command sent on it."""
    cluster = cast(aiocluster.RedisCluster, client)
    await cluster.initialize()
    node = cluster.get_node_from_key(channel) or cluster.get_random_node()
    kwargs = node.connection_kwargs
    own = aioredis.Redis(host=node.host, port=int(node.port), username=kwargs.get("username"),
                         password=kwargs.get("password"),
                         socket_connect_timeout=kwargs.get("socket_connect_timeout"))
    try:
        yield own
    finally:
        await own.aclose()


def untagged(queues: list[str] | tuple[str, ...]) -> list[str]:
    """The queue names that carry no hash tag (each needs one on a cluster)."""
    return [q for q in queues if hash_tag(q) is None]


def require_tags(queues: list[str] | tuple[str, ...]) -> None:
    """Refuse, in one line, queue names a cluster cannot keep in one slot."""
    missing = untagged(queues)
    if missing:
        q = missing[0]
        raise ConfigurationError(
            f"queue {q!r} has no hash tag: on a Redis Cluster every queue name carries one, "
            f"like '{{{q}}}', so that its lists and keys share one slot (docs/scaling.md)")


@dataclass(frozen=True, slots=True)
class Shard:
    """One master of a cluster: where it is, which slots it serves, its replicas."""

    address: str
    ranges: tuple[tuple[int, int], ...]
    replicas: tuple[str, ...]
    up: bool

    @property
    def slots(self) -> int:
        return sum(last - first + 1 for first, last in self.ranges)

    def serves(self, slot: int) -> bool:
        return any(first <= slot <= last for first, last in self.ranges)


@dataclass(frozen=True, slots=True)
class ClusterView:
    """What a cluster says about itself (for ``relier doctor``)."""

    state: str
    slots_ok: int
    shards: tuple[Shard, ...]

    def shard_of(self, name: str) -> Shard | None:
        """The master serving key (or queue) ``name``; None if no master serves its slot."""
        slot = key_slot(name.encode())
        return next((s for s in self.shards if s.serves(slot)), None)


def view(client: redis.Redis) -> ClusterView:
    """Ask a cluster client (see :func:`sync_client`) for the cluster's state and its
    masters; a field the server left out or spelled oddly reads as unknown rather than
    failing."""
    cluster = cast(redis.cluster.RedisCluster, client)
    info: dict[str, Any] = cluster.cluster_info()
    nodes: dict[str, dict[str, Any]] = cluster.cluster_nodes()
    masters = {n.get("node_id"): (address, n) for address, n in nodes.items()
               if "master" in str(n.get("flags", ""))}
    replicas: dict[str, list[str]] = {}
    for address, n in nodes.items():
        if n.get("master_id") in masters:
            replicas.setdefault(str(n["master_id"]), []).append(address)
    shards = tuple(sorted(
        (Shard(address=address, ranges=_ranges(n.get("slots")),
               replicas=tuple(sorted(replicas.get(str(node_id), []))),
               up="fail" not in str(n.get("flags", "")) and bool(n.get("connected", True)))
         for node_id, (address, n) in masters.items()),
        key=lambda s: s.ranges[:1]))
    slots_ok = info.get("cluster_slots_ok", 0)
    return ClusterView(state=str(info.get("cluster_state", "unknown")),
                       slots_ok=int(slots_ok) if str(slots_ok).isdigit() else 0,
                       shards=shards)


def _ranges(slots: object) -> tuple[tuple[int, int], ...]:
    found = []
    for item in slots if isinstance(slots, list) else []:
        if isinstance(item, list | tuple) and len(item) == 2 and all(
                str(x).isdigit() for x in item):
            found.append((int(item[0]), int(item[1])))
    return tuple(sorted(found))
