"""What ``relier dlq show`` needs to decide a replay: the call decoded from the entry's
base64 body, and the traceback with Relier's own frames folded.

The entry itself is never changed: ``--json`` prints its fields as they are and adds a
``decoded`` object next to them.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Final

import msgspec

from relier.errors import RelierError
from relier.protocol import dead_letter
from relier.protocol import message as wire
from relier.protocol.dead_letter import DeadLetter

#: The folder of Relier's own modules, whose frames a task author never needs to read.
RELIER_ROOT: Final = str(Path(__file__).resolve().parent.parent)
_FRAME: Final = re.compile(r'^\s*File "(?P<path>[^"]+)", line \d+')


def decoded_call(entry: DeadLetter) -> dict[str, Any]:
    """``{"args", "kwargs", "eta", "expires", "retries"}`` of the entry's message, or
    ``{"error": why}`` when the body cannot be read (that is often why it is here)."""
    try:
        message = wire.decode(dead_letter.replay_bytes(entry))
    except (RelierError, ValueError, TypeError, msgspec.MsgspecError) as exc:
        return {"error": f"the message body cannot be decoded: {exc}"}
    return {
        "args": message.args,
        "kwargs": message.kwargs,
        "retries": message.retries,
        "eta": wire.format_time(message.eta) if message.eta else None,
        "expires": wire.format_time(message.expires) if message.expires else None,
    }


def with_decoded(entry: DeadLetter) -> dict[str, Any]:
    """The entry's JSON fields, unchanged, plus ``decoded``."""
    fields: dict[str, Any] = msgspec.to_builtins(entry)
    fields["decoded"] = decoded_call(entry)
    return fields


def fold_relier_frames(traceback: str, root: str = RELIER_ROOT) -> str:
    """The traceback with each run of Relier's own frames replaced by one line."""
    out: list[str] = []
    hidden = 0
    lines = traceback.splitlines()
    i = 0
    while i < len(lines):
        frame = _FRAME.match(lines[i])
        if frame and frame.group("path").startswith(root):
            hidden += 1
            i += 1
            while i < len(lines) and lines[i].startswith("    ") and not _FRAME.match(lines[i]):
                i += 1  # the frame's source line and its ^^^ markers
            continue
        if hidden:
            out.append(f"  [... {hidden} Relier frame(s) folded; --full-traceback shows them]")
            hidden = 0
        out.append(lines[i])
        i += 1
    return "\n".join(out)
