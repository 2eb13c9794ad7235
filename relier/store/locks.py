"""Typed calls of the named-lock scripts (``relier/lock.py``'s only way into Redis).

A lock key holds ``"<holder> <fencing token>"``; its name is also the channel its
release is announced on.
"""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager, AbstractContextManager
from dataclasses import dataclass
from typing import Any

from relier.store import channels, keys
from relier.store.broker import as_bytes
from relier.store.clients import AsyncClient, SyncClient
from relier.store.runner import Op, ScriptCall


@dataclass(frozen=True, slots=True)
class Attempt:
    """What an acquire found: ``token`` > 0 when it took the lock, else 0 and the
    holder's lease left in ms (negative: the key vanished or has no TTL)."""

    token: int
    holder_left_ms: int


def channel(name: str) -> str:
    """Where a lock's release is announced (its own key name)."""
    return keys.lock(name)


def watch_release(client: AsyncClient,
                  name: str) -> AbstractAsyncContextManager[channels.Listener]:
    """Listen for the lock's release announcements (subscribe, then try again: a release
    between the two cannot be missed)."""
    return channels.listen(client, [channel(name)])


def watch_release_sync(client: SyncClient,
                       name: str) -> AbstractContextManager[channels.SyncListener]:
    """:func:`watch_release` on a blocking client."""
    return channels.listen_sync(client, [channel(name)])


async def holder(client: AsyncClient, name: str) -> str | None:
    """The lock's value, ``"<holder> <token>"`` (None: nobody holds it)."""
    return _text(await client.get(keys.lock(name)))


def holder_sync(client: SyncClient, name: str) -> str | None:
    """:func:`holder` on a blocking client."""
    return _text(client.get(keys.lock(name)))


def _text(value: object) -> str | None:
    return None if value is None else as_bytes(value).decode(errors="replace")


def acquire(*, name: str, holder: str, ttl_ms: int) -> Op[Attempt]:
    """Take the lock if free; it then holds ``"<holder> <new fencing token>"``."""
    return Op(ScriptCall("lock_acquire", [keys.lock(name), keys.lock_fence(name)],
                         [holder, ttl_ms]), _read_attempt)


def release(*, name: str, value: str) -> Op[bool]:
    """Release if the lock still holds ``value``; False when the lease had gone."""
    return Op(ScriptCall("lock_release", [keys.lock(name)], [value]), _read_flag)


def extend(*, name: str, value: str, ttl_ms: int) -> Op[bool]:
    """Restart the lease if the lock still holds ``value``; False when it had gone."""
    return Op(ScriptCall("lock_extend", [keys.lock(name)], [value, ttl_ms]), _read_flag)


def _read_attempt(reply: Any) -> Attempt:
    token, left = reply
    return Attempt(int(token), int(left))


def _read_flag(reply: Any) -> bool:
    return bool(int(reply))
