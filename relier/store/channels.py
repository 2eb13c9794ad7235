"""Pub/sub: listening on channels and publishing to them, sync and async.

Callers name no channel themselves: the store module that owns a channel (a result's,
a lock's release, the pidbox) hands out a listener for it. A listener yields the data of
each published message as bytes and nothing else (subscription confirmations and
anything that is not bytes are skipped), so callers never read redis-py's dicts.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from typing import Any

from relier.store import cluster
from relier.store.clients import AsyncClient, SyncClient
from relier.store.cluster import is_cluster

#: What redis-py's ``get_message`` is given for "wait as long as it takes" on a blocking
#: client (None there would mean "do not wait"); an hour, after which the caller loops.
_FOREVER_S = 3600.0


def _data(message: dict[str, Any] | None) -> bytes | None:
    if message and message.get("type") in ("message", "pmessage"):
        data = message.get("data")
        return data if isinstance(data, bytes) else None
    return None


class Listener:
    """An async subscription: :meth:`next` waits for the next message's data."""

    def __init__(self, pubsub: Any) -> None:
        self._pubsub = pubsub

    async def next(self, timeout: float | None = None) -> bytes | None:
        """The next message's data; None when ``timeout`` seconds passed first (None:
        wait until one comes) or when what came was not a message."""
        return _data(await self._pubsub.get_message(ignore_subscribe_messages=True,
                                                    timeout=timeout))


class SyncListener:
    """A blocking subscription: :meth:`next` waits for the next message's data."""

    def __init__(self, pubsub: Any) -> None:
        self._pubsub = pubsub

    def next(self, timeout: float | None = None) -> bytes | None:
        """The next message's data; None when ``timeout`` seconds passed first (None:
        up to an hour) or when what came was not a message."""
        wait = _FOREVER_S if timeout is None else timeout
        return _data(self._pubsub.get_message(ignore_subscribe_messages=True, timeout=wait))


@asynccontextmanager
async def listen(client: AsyncClient, channels: Sequence[str],
                 patterns: Sequence[str] = ()) -> AsyncIterator[Listener]:
    """Subscribe (on a connection of the subscription's own) for the block's duration;
    the subscription is in place before the block starts, so a caller can subscribe,
    then read, and miss nothing published in between."""
    if is_cluster(client):
        async with (cluster.subscriber(client, [*channels, *patterns][0]) as own,
                    _subscribed(own, channels, patterns) as listener):
            yield listener
        return
    async with _subscribed(client, channels, patterns) as listener:
        yield listener


@asynccontextmanager
async def _subscribed(client: AsyncClient, channels: Sequence[str],
                      patterns: Sequence[str]) -> AsyncIterator[Listener]:
    async with client.pubsub() as pubsub:
        if channels:
            await pubsub.subscribe(*channels)
        if patterns:
            await pubsub.psubscribe(*patterns)
        yield Listener(pubsub)


@contextmanager
def listen_sync(client: SyncClient, channels: Sequence[str]) -> Iterator[SyncListener]:
    """:func:`listen` on a blocking client."""
    with client.pubsub() as pubsub:  # type: ignore[no-untyped-call]
        pubsub.subscribe(*channels)
        yield SyncListener(pubsub)


async def publish(client: AsyncClient, channel: str, payload: bytes) -> int:
    """PUBLISH; how many subscribers received it."""
    return int(await client.publish(channel, payload))
