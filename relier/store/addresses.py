"""The parts of a multi-host Redis URL that ``redis+sentinel://`` and ``redis+cluster://``
share: the credentials before ``@`` and each ``HOST[:PORT]`` of the host list."""

from __future__ import annotations

from urllib.parse import unquote


def credentials(text: str) -> tuple[str | None, str | None]:
    """``USER:PASSWORD`` (either may be empty, both percent-decoded) as (user, password)."""
    if not text:
        return None, None
    user, sep, password = text.partition(":")
    return unquote(user) or None, unquote(password) if sep else None


def host_and_port(item: str, default_port: int) -> tuple[str, int]:
    """One ``HOST[:PORT]``; ``ValueError`` saying what is wrong with it (no host, a port
    out of range), for the caller to put in its own one-line error."""
    host, _, port = item.strip().rpartition(":") if ":" in item else (item.strip(), "", "")
    if not host:
        raise ValueError("has no host")
    if port and not (port.isdigit() and 0 < int(port) < 65536):
        raise ValueError("has an invalid port")
    return host, int(port) if port else default_port
