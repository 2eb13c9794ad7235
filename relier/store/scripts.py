"""The Lua sources of Relier's atomic operations, one ``lua/NAME.lua`` file per operation.

Each script is called by SHA (:data:`SHAS`); :mod:`relier.store.runner` is the one place
that loads a script again after ``NOSCRIPT`` (a restarted or failed-over Redis starts
with an empty script cache).

Lua scripts cannot call each other, so a helper shared by several scripts lives in
``lua/lib/NAME.lua`` and is pasted in where a script says ``--!include NAME``.
A script that must do what another whole script does, plus more, in the same atomic
step, pastes that script's text inside a function body with ``--!script NAME``
(``tick.lua`` wraps ``enqueue.lua`` so a schedule's tick is enqueued by the same code).
"""

from __future__ import annotations

import hashlib
import re
from functools import cache
from importlib.resources import files
from typing import Final, Literal

ScriptName = Literal[
    "enqueue", "idempotent_begin", "fetch", "claim", "ack", "ack_many", "dead_letter", "schedule",
    "requeue", "reclaim", "pump", "lease", "resurrect", "replay", "rate_limit", "lock_acquire",
    "lock_release", "lock_extend", "dlq_remove", "dlq_recount", "find", "purge", "undefer",
    "revoke", "progress", "canvas_push",
    "tick", "tick_skip", "fence", "record_drop", "revoke_result",
]
SCRIPT_NAMES: Final[tuple[ScriptName, ...]] = (
    "enqueue", "idempotent_begin", "fetch", "claim", "ack", "ack_many", "dead_letter", "schedule",
    "requeue", "reclaim", "pump", "lease", "resurrect", "replay", "rate_limit", "lock_acquire",
    "lock_release", "lock_extend", "dlq_remove", "dlq_recount", "find", "purge", "undefer",
    "revoke", "progress", "canvas_push",
    "tick", "tick_skip", "fence", "record_drop", "revoke_result",
)

_INCLUDE: Final = re.compile(r"^--!include (\w+)$", re.MULTILINE)
_SCRIPT: Final = re.compile(r"^--!script (\w+)$", re.MULTILINE)


@cache
def source(name: ScriptName) -> str:
    """The Lua text of one script."""
    folder = files("relier.store") / "lua"
    text = (folder / f"{name}.lua").read_text(encoding="utf-8")
    text = _SCRIPT.sub(lambda m: (folder / f"{m.group(1)}.lua").read_text(encoding="utf-8"),
                       text)
    return _INCLUDE.sub(
        lambda m: (folder / "lib" / f"{m.group(1)}.lua").read_text(encoding="utf-8"), text
    )


def _sha(name: ScriptName) -> str:
    return hashlib.sha1(source(name).encode()).hexdigest()


#: Each script's SHA1, the name ``EVALSHA`` calls it by.
SHAS: Final[dict[ScriptName, str]] = {name: _sha(name) for name in SCRIPT_NAMES}
