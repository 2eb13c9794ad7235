"""The dead-letter entry: a message that will not run again, and why."""

from __future__ import annotations

import base64
from typing import Any, Final

import msgspec

from relier.protocol.message import encode_json


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


_decoder: Final = msgspec.json.Decoder(DeadLetter)


_raw_json: Final = msgspec.json.Decoder(msgspec.Raw)


def original_message(raw: bytes) -> tuple[Any, str | None]:
    """The envelope for an entry: the JSON as it arrived, or text plus the exact bytes in
    base64.

    Valid JSON is embedded in the entry byte for byte (``msgspec.Raw``: checked, never
    parsed into objects), so dead-lettering a large message costs one copy, not three.
    """
    try:
        return _raw_json.decode(raw), None
    except msgspec.DecodeError:
        return raw.decode("utf-8", errors="replace"), base64.b64encode(raw).decode("ascii")


def replay_bytes(entry: DeadLetter) -> bytes:
    """The message to enqueue again for this entry."""
    if entry.message_raw is not None:
        return base64.b64decode(entry.message_raw)
    return encode_json(entry.message)


def encode(entry: DeadLetter) -> bytes:
    return encode_json(entry)


def decode(raw: bytes | str) -> DeadLetter:
    return _decoder.decode(raw)
