"""A rate limit as Celery spells it (``"100/s"``, ``"30/m"``, ``"500/h"``), parsed.

Pure: the task declaration parses it, the runtime (``runtime/rate_limit.py``) spends it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

from relier.errors import ConfigurationError

_PERIODS_S: Final = {"s": 1.0, "m": 60.0, "h": 3600.0}
_PATTERN: Final = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*/\s*([smh])\s*$")


@dataclass(frozen=True, slots=True)
class RateLimit:
    """At most ``count`` task starts per ``period_s``, spaced evenly."""

    count: float
    period_s: float

    @classmethod
    def parse(cls, text: str) -> RateLimit:
        """``"100/s"``, ``"30/m"``, ``"500/h"`` (a decimal count such as ``"0.5/s"`` works)."""
        found = _PATTERN.match(text) if isinstance(text, str) else None
        if found is None or float(found.group(1)) <= 0:
            raise ConfigurationError(
                f"rate_limit={text!r}: expected a positive count per unit, "
                "like '100/s', '30/m' or '500/h'"
            )
        return cls(float(found.group(1)), _PERIODS_S[found.group(2)])

    @property
    def interval_us(self) -> float:
        """Microseconds between two tokens."""
        return self.period_s * 1_000_000 / self.count
