"""The Lua sources of Relier's atomic operations, one ``.lua`` file per operation.

Each script is loaded once per connection pool and called by SHA; redis-py reloads it
after ``NOSCRIPT`` (a restarted or failed-over Redis starts with an empty script cache).
"""

from __future__ import annotations

from functools import cache
from importlib.resources import files
from typing import Final, Literal

ScriptName = Literal[
    "fetch", "claim", "ack", "dead_letter", "schedule", "requeue", "pump", "lease", "resurrect",
    "replay",
]
SCRIPT_NAMES: Final[tuple[ScriptName, ...]] = (
    "fetch", "claim", "ack", "dead_letter", "schedule", "requeue", "pump", "lease", "resurrect",
    "replay",
)


@cache
def source(name: ScriptName) -> str:
    """The Lua text of one script."""
    return (files("relier.protocol") / "scripts" / f"{name}.lua").read_text(encoding="utf-8")
