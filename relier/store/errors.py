"""redis-py's errors, seen from Relier: which ones a loop waits out, which mean "not now".

This is the only module that names redis-py's exception classes for the rest of
Relier: code outside the store catches :data:`REDIS_ERRORS` or the aliases below, never
``redis.exceptions`` directly, so the store stays the one seam to Redis.
"""

from __future__ import annotations

from typing import Final

from redis.exceptions import AuthenticationError as AuthenticationError
from redis.exceptions import ClusterDownError, NoScriptError, SlotNotCoveredError, TryAgainError
from redis.exceptions import ConnectionError as StoreConnectionError
from redis.exceptions import OutOfMemoryError as OutOfMemoryError
from redis.exceptions import ReadOnlyError as ReadOnlyError
from redis.exceptions import RedisError as StoreError
from redis.exceptions import ResponseError as ErrorReply
from redis.exceptions import TimeoutError as StoreTimeoutError

__all__ = [
    "REDIS_ERRORS", "AuthenticationError", "ClusterUnavailable", "ErrorReply",
    "OutOfMemoryError", "ReadOnlyError", "StoreConnectionError", "StoreError",
    "StoreTimeoutError", "is_noscript", "is_transient",
]

#: A Redis Cluster that cannot serve a key right now: a master died and its replica is
#: not promoted yet (no node serves the slot: redis-py's ``SlotNotCoveredError``, which is
#: not a ``RedisError``), or the cluster says it is down or busy moving the slot.
ClusterUnavailable: Final = (SlotNotCoveredError, ClusterDownError, TryAgainError)

#: Errors after which a worker's Redis call is simply tried again later, with backoff:
#: the server is unreachable, or it refused (out of memory, a read-only replica after a
#: failover, failing persistence, still loading). A loop that lets one of these escape
#: would take every worker down at once, and count a resurrection against every task
#: they held.
REDIS_ERRORS: Final = (StoreConnectionError, StoreTimeoutError, OSError, ErrorReply,
                       SlotNotCoveredError)
#: Error replies that mean "not now" rather than "this call is wrong".
_TRANSIENT_REPLIES: Final = (
    "OOM", "READONLY", "MISCONF", "NOREPLICAS", "BUSY", "LOADING", "TRYAGAIN", "MASTERDOWN",
    "CLUSTERDOWN",
)


def is_transient(reply: object) -> bool:
    """An error reply worth sending again later (see ``_TRANSIENT_REPLIES``)."""
    # redis-py strips the code from the replies it has a class for.
    return isinstance(reply, (OutOfMemoryError, ReadOnlyError, *ClusterUnavailable)) or (
        isinstance(reply, ErrorReply) and str(reply).startswith(_TRANSIENT_REPLIES))


def is_noscript(value: object) -> bool:
    """The server does not have the script (restarted, failed over, SCRIPT FLUSH)."""
    return isinstance(value, NoScriptError) or (
        isinstance(value, ErrorReply) and str(value).startswith("NOSCRIPT"))
