"""Redis clients from a URL: a plain server, the master a set of Sentinels names, or a
Redis Cluster (``redis+cluster://``, see :mod:`relier.store.cluster`).

Every client Relier makes (the App's sync and async clients, a worker's heartbeat and
scrape clients, the CLI's) comes from here, so following a Sentinel failover is one
module's job (and one module for the store package to take over).

A Sentinel URL names the sentinels and the service::

    redis+sentinel://[[USER]:PASSWORD@]HOST:PORT[,HOST:PORT...]/SERVICE[/DB][?sentinel_password=P]

The credentials before ``@`` are the data nodes' (master and replicas); the sentinels
are asked without a password unless ``sentinel_password`` (and ``sentinel_username``)
are given. redis-py has no URL form for Sentinel and kombu's (``sentinel://h:p;sentinel://
h:p`` plus the ``master_name`` transport option) keeps the service name outside the URL;
one string that says everything fits ``RELIER_REDIS_URL`` and ``--redis-url``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import parse_qs, unquote

import redis
import redis.asyncio as aioredis
import redis.asyncio.sentinel as aiosentinel
import redis.sentinel

from relier.errors import ConfigurationError
from relier.store import addresses, cluster

SENTINEL_SCHEME: Final = "redis+sentinel"
SENTINEL_EXAMPLE: Final = "redis+sentinel://127.0.0.1:26379,127.0.0.1:26380/mymaster/0"
DEFAULT_SENTINEL_PORT: Final = 26379
_QUERY_OPTIONS: Final = frozenset({"sentinel_password", "sentinel_username"})


@dataclass(frozen=True, slots=True)
class SentinelTarget:
    """What a Sentinel URL says: where the sentinels are, which service, which database."""

    sentinels: tuple[tuple[str, int], ...]
    service: str
    db: int = 0
    username: str | None = None
    password: str | None = None
    sentinel_username: str | None = None
    sentinel_password: str | None = None


def is_sentinel_url(url: str) -> bool:
    """Whether ``url`` uses the ``redis+sentinel://`` scheme."""
    return url.lower().startswith(SENTINEL_SCHEME + "://")


def parse_sentinel_url(url: str) -> SentinelTarget:
    """Read a ``redis+sentinel://`` URL; ``ConfigurationError`` (one line) when it is wrong."""
    rest = url.split("://", 1)[1]
    credentials, _, location = rest.rpartition("@")
    location, _, query = location.partition("?")
    hosts, _, path = location.partition("/")
    service, db = _service_and_db(url, path)
    username, password = addresses.credentials(credentials)
    options = _query_options(url, query)
    return SentinelTarget(
        sentinels=tuple(_address(url, item) for item in hosts.split(",")),
        service=service, db=db, username=username, password=password,
        sentinel_username=options.get("sentinel_username"),
        sentinel_password=options.get("sentinel_password"),
    )


def _refuse(url: str, problem: str) -> ConfigurationError:
    return ConfigurationError(
        f"Sentinel URL {redact(url)!r}: {problem} (expected like {SENTINEL_EXAMPLE})")


def _service_and_db(url: str, path: str) -> tuple[str, int]:
    parts = [unquote(p) for p in path.strip("/").split("/") if p]
    if not parts:
        raise _refuse(url, "no service name after the hosts")
    if len(parts) > 2 or (len(parts) == 2 and not parts[1].isdigit()):
        raise _refuse(url, f"the path must be /SERVICE or /SERVICE/DB, not /{path.strip('/')}")
    return parts[0], int(parts[1]) if len(parts) == 2 else 0


def _query_options(url: str, query: str) -> dict[str, str]:
    options = {name: values[-1] for name, values in parse_qs(query).items()}
    unknown = sorted(set(options) - _QUERY_OPTIONS)
    if unknown:
        raise _refuse(url, f"unknown option {unknown[0]!r}; known: "
                           f"{', '.join(sorted(_QUERY_OPTIONS))}")
    return options


def _address(url: str, item: str) -> tuple[str, int]:
    try:
        return addresses.host_and_port(item, DEFAULT_SENTINEL_PORT)
    except ValueError as problem:
        raise _refuse(url, f"sentinel address {item!r} {problem}") from None


def _sentinel_kwargs(target: SentinelTarget, options: dict[str, Any]) -> dict[str, Any]:
    """How the sentinels themselves are reached: the socket options, their own password."""
    kwargs = {k: v for k, v in options.items() if k.startswith("socket_")}
    if target.sentinel_password is not None:
        kwargs["password"] = target.sentinel_password
    if target.sentinel_username is not None:
        kwargs["username"] = target.sentinel_username
    return kwargs


def _master_kwargs(target: SentinelTarget, options: dict[str, Any]) -> dict[str, Any]:
    return {**options, "db": target.db, "username": target.username,
            "password": target.password}


class _MasterPool(redis.sentinel.SentinelConnectionPool):
    """The master's pool; closing it closes the clients of the sentinels it asks too."""

    def disconnect(self, inuse_connections: bool = True) -> None:
        super().disconnect(inuse_connections)
        for sentinel in self.sentinel_manager.sentinels:
            sentinel.close()


class _AsyncMasterPool(aiosentinel.SentinelConnectionPool):
    """The async twin of :class:`_MasterPool`."""

    async def aclose(self) -> None:
        await super().aclose()
        for sentinel in self.sentinel_manager.sentinels:
            await sentinel.aclose()


def sync_client(url: str, **options: Any) -> redis.Redis:
    """A blocking client: ``Redis.from_url``, or the Sentinel service's current master
    (it asks the sentinels again whenever a connection to the master breaks), or a
    cluster client."""
    if cluster.is_cluster_url(url):
        return cluster.sync_client(url, **options)
    if not is_sentinel_url(url):
        return redis.Redis.from_url(url, **options)
    target = parse_sentinel_url(url)
    sentinel = redis.sentinel.Sentinel(  # type: ignore[no-untyped-call]
        list(target.sentinels), sentinel_kwargs=_sentinel_kwargs(target, options))
    master: redis.Redis = sentinel.master_for(  # type: ignore[no-untyped-call]
        target.service, connection_pool_class=_MasterPool, **_master_kwargs(target, options))
    return master


def async_client(url: str, **options: Any) -> aioredis.Redis:
    """The async twin of :func:`sync_client`."""
    if cluster.is_cluster_url(url):
        return cluster.async_client(url, **options)
    if not is_sentinel_url(url):
        return aioredis.from_url(url, **options)
    target = parse_sentinel_url(url)
    sentinel = aiosentinel.Sentinel(  # type: ignore[no-untyped-call]
        list(target.sentinels), sentinel_kwargs=_sentinel_kwargs(target, options))
    master: aioredis.Redis = sentinel.master_for(
        target.service, connection_pool_class=_AsyncMasterPool, **_master_kwargs(target, options))
    return master


@dataclass(frozen=True, slots=True)
class SentinelView:
    """What the first sentinel that answers says about the service (for ``relier doctor``)."""

    service: str
    asked: str
    master: str | None
    replicas: tuple[str, ...]
    sentinels: int
    quorum: int | None
    down_after_ms: int | None
    failover_timeout_ms: int | None


def sentinel_view(url: str, *, timeout_s: float = 3.0) -> SentinelView:
    """Ask the URL's sentinels, in order, about its service; raises the last
    ``redis.RedisError`` when none answers."""
    target = parse_sentinel_url(url)
    kwargs = _sentinel_kwargs(target, {"socket_timeout": timeout_s,
                                       "socket_connect_timeout": timeout_s})
    error: redis.RedisError = redis.ConnectionError("no sentinel in the URL")
    for host, port in target.sentinels:
        client = redis.Redis(host=host, port=port, decode_responses=True, **kwargs)
        try:
            return _view_from(client, target.service, f"{host}:{port}")
        except redis.RedisError as exc:
            error = exc
        finally:
            client.close()
    raise error


def _view_from(client: redis.Redis, service: str, asked: str) -> SentinelView:
    fields = _pairs(client.sentinel_master(service))
    replicas = client.sentinel_slaves(service)
    others = client.sentinel_sentinels(service)
    return SentinelView(
        service=service, asked=asked,
        master=_address_of(fields),
        replicas=tuple(a for a in (_address_of(_pairs(r)) for r in _list(replicas)) if a),
        sentinels=1 + len(_list(others)),
        quorum=_int(fields.get("quorum")),
        down_after_ms=_int(fields.get("down-after-milliseconds")),
        failover_timeout_ms=_int(fields.get("failover-timeout")),
    )


def _pairs(reply: Any) -> dict[str, str]:
    """A flat ``[name, value, ...]`` reply (or a RESP3 map) as a dict of strings; any other
    shape (a hostile or unexpected reply) reads as empty."""
    if isinstance(reply, dict):
        return {str(k): str(v) for k, v in reply.items()}
    if isinstance(reply, list | tuple):
        return {str(reply[i]): str(reply[i + 1]) for i in range(0, len(reply) - 1, 2)}
    return {}


def _list(reply: Any) -> list[Any]:
    return list(reply) if isinstance(reply, list | tuple) else []


def _address_of(fields: dict[str, str]) -> str | None:
    ip, port = fields.get("ip"), fields.get("port")
    down = "s_down" in fields.get("flags", "") or "o_down" in fields.get("flags", "")
    return f"{ip}:{port}{' (down)' if down else ''}" if ip and port else None


def _int(text: str | None) -> int | None:
    return int(text) if text is not None and text.lstrip("-").isdigit() else None


def redact(url: str) -> str:
    """The URL with its password replaced, fit for logs and error messages."""
    # A Sentinel URL may carry the sentinels' password in its query.
    url = re.sub(r"(sentinel_password=)[^&]*", r"\1***", url)
    scheme, sep, rest = url.partition("://")
    if not sep or "@" not in rest:
        return url
    credentials, _, host = rest.rpartition("@")
    user = credentials.split(":", 1)[0]
    return f"{scheme}://{user}:***@{host}" if ":" in credentials else f"{scheme}://***@{host}"
