"""Typed calls of the named-lock scripts (``relier/lock.py``'s only way into Redis).

A lock key holds ``"<holder> <fencing token>"``; its name is also the channel its
release is announced on.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from relier.store import keys
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
