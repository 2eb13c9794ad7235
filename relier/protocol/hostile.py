"""Reading bytes nobody vouches for: every byte Relier reads back from Redis.

Anyone who can write to the broker can put anything in a queue list, a DLQ list, the
worker registry or a result key. A reader must turn every such input into a clear
:class:`PayloadError` (or ``None``), never into an exception that escapes a worker loop.
The ways a decode can fail are many: msgspec's ``DecodeError``/``ValidationError``, a
``RecursionError`` for JSON nested thousands of levels deep (msgspec recurses on the C
stack, bounded by Python's recursion limit), ``UnicodeDecodeError`` for invalid UTF-8,
and ``ValueError``/``TypeError``/``OverflowError`` from conversions. They are caught
here, in one place, rather than in try/excepts scattered over the readers.

Nesting cannot blow the stack: msgspec checks Python's recursion limit at every level
it descends, so a message nested thousands of levels deep costs one ``RecursionError``,
caught here. That check is free, where scanning every message for its depth first would
cost the hot path about a tenth of a decode; so the explicit bound
(:func:`nesting_exceeds`, :data:`MAX_NESTING`) is kept for what must read back later at
any stack depth: the JSON a DLQ entry embeds.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Final, TypeVar

import msgspec

from relier.errors import PayloadError

T = TypeVar("T")

#: Deepest JSON a DLQ entry embeds as JSON (deeper: base64). Celery's canvas nests a few
#: levels per chain/chord step, and task arguments rarely go past a dozen; msgspec needs
#: one Python recursion level per level, so an entry this deep reads back even from deep
#: inside a caller's stack (the default recursion limit is 1000).
MAX_NESTING: Final = 200

#: Everything a decode of hostile bytes can raise, besides PayloadError itself.
DECODE_ERRORS: Final = (
    msgspec.DecodeError,  # ValidationError included
    RecursionError,
    UnicodeDecodeError,
    ValueError,
    TypeError,
    OverflowError,
    KeyError,
    IndexError,
)

_STRUCTURE: Final = re.compile(rb'[\[\]{}"\\]')


def nesting_exceeds(raw: bytes | str, limit: int = MAX_NESTING) -> bool:
    """Whether JSON text nests deeper than ``limit`` (brackets inside strings ignored).

    Cheap for ordinary messages: when the text holds fewer brackets than ``limit`` in all
    (counted in C), it cannot nest deeper, and nothing else is looked at.
    """
    data = raw.encode("utf-8", "surrogatepass") if isinstance(raw, str) else raw
    if data.count(b"[") + data.count(b"{") <= limit:
        return False
    return _scan_depth(data, limit)


def _scan_depth(data: bytes, limit: int) -> bool:
    depth, in_string, escaped_at = 0, False, -2
    for match in _STRUCTURE.finditer(data):
        char, at = match.group(), match.start()
        if char == b"\\":
            # A backslash escapes the next byte only; "\\\\" escapes itself.
            if in_string and escaped_at != at - 1:
                escaped_at = at
            continue
        if in_string:
            in_string = not (char == b'"' and escaped_at != at - 1)
        elif char == b'"':
            in_string = True
        elif char in b"[{":
            depth += 1
            if depth > limit:
                return True
        else:
            depth -= 1
    return False


def too_deep(what: str) -> PayloadError:
    return PayloadError("payload_invalid", f"{what} nests too deep to decode (RecursionError)")


def read(decode: Callable[[bytes | str], T], raw: bytes | str, what: str) -> T:
    """``decode(raw)``, with every way it can fail turned into :class:`PayloadError`.

    The reason is ``not_json`` when the text is not JSON (or not UTF-8) and
    ``payload_invalid`` when it is JSON of the wrong shape or nests too deep. ``what``
    names the thing in the error (``"message"``, ``"DLQ entry"``, ...).
    """
    try:
        return decode(raw)
    except PayloadError:
        raise
    except msgspec.ValidationError as exc:
        raise PayloadError("payload_invalid", f"{what}: {exc}") from exc
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:
        raise PayloadError("not_json", f"{what} is not JSON: {exc}") from exc
    except RecursionError as exc:
        raise too_deep(what) from exc
    except DECODE_ERRORS as exc:
        raise PayloadError("payload_invalid", f"{what}: {type(exc).__name__}: {exc}") from exc


def read_or_none(decode: Callable[[bytes | str], T], raw: bytes | str) -> T | None:
    """``decode(raw)``, or None for anything unreadable (for readers that show, not act)."""
    try:
        return read(decode, raw, "value")
    except PayloadError:
        return None


def is_utf8(raw: bytes) -> bool:
    """Whether the bytes are valid UTF-8 (JSON text must be, to be stored and read back)."""
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True
