"""Log set-up for the CLI: plain text lines or one JSON object per line."""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any, Final

from relier.errors import ConfigurationError


class JsonFormatter(logging.Formatter):
    """One JSON object per record, with any ``extra`` fields kept."""

    _skip = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": round(record.created, 6),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        entry.update({k: v for k, v in record.__dict__.items() if k not in self._skip})
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


class TextFormatter(logging.Formatter):
    """``TIME LEVEL LOGGER: MESSAGE`` in UTC; the time text is made once per second.

    ``logging.Formatter`` converts and formats the time of every record, and a busy
    worker writes one outcome line per task: the seconds part is kept from the last
    record, and only the milliseconds are added to it.
    """

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s: %(message)s")
        self.converter = time.gmtime
        self._second = -1
        self._stamp = ""

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        # Called by format() under the handler's lock: the two fields change together.
        second = int(record.created)
        if second != self._second:
            self._stamp = time.strftime(self.default_time_format, time.gmtime(second))
            self._second = second
        return f"{self._stamp},{int(record.msecs):03d}"


LEVELS: Final = ("debug", "info", "warning", "error")
FORMATS: Final = ("text", "json")


def configure(level: str = "info", fmt: str = "text") -> None:
    """Send relier's logs to stderr at ``level`` in ``fmt`` (``text`` or ``json``)."""
    if level.lower() not in LEVELS:
        raise ConfigurationError(f"--log-level must be one of {', '.join(LEVELS)}, "
                                 f"not {level!r}")
    if fmt.lower() not in FORMATS:
        raise ConfigurationError(f"--log-format must be text or json, not {fmt!r}")
    handler = logging.StreamHandler(sys.stderr)
    if fmt.lower() == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(TextFormatter())
    root = logging.getLogger("relier")
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    root.propagate = False
