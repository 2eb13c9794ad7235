"""One place that turns a bad Redis URL or a failed connection into one sentence.

The CLI, the worker, ``push`` and the web integrations all call :func:`check_url` (when
settings are read) and :func:`explain` (when talking to Redis failed), so a user sees
the same line everywhere, with a hint of what to write instead, never redis-py's
traceback.
"""

from __future__ import annotations

from typing import Final
from urllib.parse import urlsplit

from relier.errors import BrokerUnavailable, ConfigurationError, RelierError
from relier.settings import redact
from relier.store.cluster import is_cluster_url, parse_cluster_url
from relier.store.connections import is_sentinel_url, parse_sentinel_url
from relier.store.errors import AuthenticationError
from relier.store.errors import ErrorReply as ResponseError
from relier.store.errors import StoreConnectionError as RedisConnectionError
from relier.store.errors import StoreError as RedisError
from relier.store.errors import StoreTimeoutError as RedisTimeoutError

SCHEMES: Final = ("redis", "rediss", "unix", "redis+sentinel", "redis+cluster")
EXAMPLE_URL: Final = "redis://localhost:6379/0"
#: Error replies (or their start) that mean "this server wants credentials".
_AUTH_REPLIES: Final = ("NOAUTH", "WRONGPASS", "HELLO must be called", "invalid password",
                        "invalid username-password", "Authentication required")


def suggest_url(url: str) -> str:
    """The URL the user probably meant: a ``redis://`` scheme and a database number."""
    rest = url.split("://", 1)[1] if "://" in url else url
    rest = rest.strip().strip("/") or "localhost:6379"
    host, _, db = rest.partition("/")
    return f"redis://{host}/{db if db.isdigit() else 0}"


def check_url(url: object) -> None:
    """Raise ``ConfigurationError`` (one line, with a hint) for a URL redis-py would refuse."""
    if not isinstance(url, str) or not url.strip():
        raise ConfigurationError(f"redis_url must be a URL like {EXAMPLE_URL}, got {url!r}")
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    if scheme not in SCHEMES:
        found = f"scheme {scheme!r}" if scheme else "no scheme"
        raise ConfigurationError(
            f"Redis URL {redact(url)!r} has {found}; it must start with redis://, rediss://, "
            f"unix://, redis+sentinel:// or redis+cluster:// "
            f"(did you mean {suggest_url(redact(url))}?)")
    if is_cluster_url(url):
        parse_cluster_url(url)  # raises its own one-line ConfigurationError
        return
    if is_sentinel_url(url):
        parse_sentinel_url(url)  # raises its own one-line ConfigurationError
        return
    _check_port_and_db(url)


def _check_port_and_db(url: str) -> None:
    if url.startswith("unix://"):
        return
    parts = urlsplit(url)
    try:
        parts.port  # noqa: B018 - raises ValueError for a port out of range
    except ValueError:
        raise ConfigurationError(
            f"Redis URL {redact(url)!r} has an invalid port; ports are 1-65535 "
            f"(did you mean {EXAMPLE_URL}?)") from None
    db = parts.path.strip("/")
    if db and not db.isdigit():
        raise ConfigurationError(
            f"Redis URL {redact(url)!r}: the path must be a database number like /0, "
            f"not /{db}")


def explain(url: str, exc: BaseException) -> RelierError | None:
    """Relier's error for a failed Redis call, or None when ``exc`` is not about the
    connection (a script error, say) and should propagate as it is."""
    shown = redact(url)
    text = str(exc)
    if isinstance(exc, AuthenticationError) or text.startswith(_AUTH_REPLIES):
        return ConfigurationError(_auth_line(url, shown, text))
    if isinstance(exc, ResponseError) and "DB index is out of range" in text:
        return ConfigurationError(
            f"Redis at {shown} has no database {urlsplit(url).path.strip('/')}: its "
            "'databases' setting is lower (16 by default: use /0 to /15)")
    if isinstance(exc, RedisConnectionError | RedisTimeoutError | OSError):
        return BrokerUnavailable(shown, exc)
    if isinstance(exc, ValueError) and not isinstance(exc, RedisError):
        try:
            check_url(url)
        except ConfigurationError as refused:
            return refused
    return None


def _auth_line(url: str, shown: str, reply: str) -> str:
    has_password = urlsplit(url).password is not None
    if has_password:
        return (f"Redis at {shown} refused the password in the URL ({reply.rstrip('.')}); "
                "check the user and password")
    host = urlsplit(url).netloc or "localhost:6379"
    return (f"Redis at {shown} requires a password; put it in the URL: "
            f"redis://:PASSWORD@{host}{urlsplit(url).path or '/0'} "
            f"(or redis://USER:PASSWORD@... for an ACL user)")
