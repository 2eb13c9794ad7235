"""The dead-letter entry: a message that will not run again, and why."""

from __future__ import annotations

import base64
import re
from typing import Any, Final

import msgspec

from relier.protocol import hostile
from relier.protocol.message import encode_json

#: The reason `relier dlq` shows for an entry it cannot read (not one Relier writes).
UNREADABLE: Final = "unreadable"


class DeadLetter(msgspec.Struct, kw_only=True):
    """One DLQ entry, as ``relier dlq list --json`` prints it."""

    task_id: str | None
    task: str | None
    queue: str
    reason: str
    error: str
    traceback: str | None = None
    attempts: int = 1
    resurrections: int = 0
    worker: str | None = None
    failed_at: float
    #: The original envelope as a JSON object, or its text if it was not JSON.
    message: Any
    #: The original bytes, base64, only when they were not JSON (so replay is exact).
    message_raw: str | None = None
    #: Seconds the last run took, when it ran (a ``hard_timeout`` entry always has it).
    elapsed: float | None = None
    #: How many times the message was replayed from the DLQ before it landed here again.
    replays: int = 0


_decoder: Final = msgspec.json.Decoder(DeadLetter)


_raw_json: Final = msgspec.json.Decoder(msgspec.Raw)


def original_message(raw: bytes) -> tuple[Any, str | None]:
    """The envelope for an entry: the JSON as it arrived, or text plus the exact bytes in
    base64.

    Valid JSON is embedded in the entry byte for byte (``msgspec.Raw``: checked, never
    parsed into objects), so dead-lettering a large message costs one copy, not three.
    Anything else (not JSON, not UTF-8, nested too deep to read back) is kept as base64,
    so that the entry always decodes again and a replay puts back the exact bytes.
    """
    if hostile.is_utf8(raw) and not hostile.nesting_exceeds(raw):
        try:
            return _raw_json.decode(raw), None
        except hostile.DECODE_ERRORS:
            pass
    return raw.decode("utf-8", errors="replace"), base64.b64encode(raw).decode("ascii")


def replay_bytes(entry: DeadLetter) -> bytes:
    """The message to enqueue again for this entry."""
    if entry.message_raw is not None:
        return base64.b64decode(entry.message_raw)
    return encode_json(entry.message)


def encode(entry: DeadLetter) -> bytes:
    return encode_json(entry)


def decode(raw: bytes | str) -> DeadLetter:
    """An entry read back from a DLQ list; :class:`PayloadError` if it is not one."""
    return hostile.read(_decoder.decode, raw, "DLQ entry")


#: A top-level string field of a compact JSON entry: the first match is the field itself
#: (its name comes before any nested object, and quotes inside strings are escaped).
_FIELD: Final = {name: re.compile(rb'"' + name.encode() + rb'":"([^"]*)"')
                 for name in ("task_id", "task", "reason")}


def _field(raw: bytes, name: str) -> str | None:
    found = _FIELD[name].search(raw)
    return found.group(1).decode("utf-8", errors="replace") if found else None


def counted_reason(raw: bytes) -> str:
    """The reason an entry is counted under in the DLQ's count-by-reason hash, found the
    way ``dlq_recount.lua`` finds it (so it works for an entry that does not decode)."""
    return _field(raw, "reason") or "unknown"


def unreadable(raw: bytes, queue: str, why: str) -> DeadLetter:
    """What the DLQ commands show for an entry that does not decode (written by hand or
    by an old version): its bytes, so nothing is hidden, why it cannot be read, and its
    task id and name when their text can still be found in it."""
    return DeadLetter(
        task_id=_field(raw, "task_id"), task=_field(raw, "task"), queue=queue,
        reason=UNREADABLE,
        error=f"this DLQ entry cannot be read: {why}", failed_at=0.0,
        message=raw.decode("utf-8", errors="replace"),
        message_raw=base64.b64encode(raw).decode("ascii"),
    )
