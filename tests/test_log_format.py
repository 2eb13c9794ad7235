"""The text log formatter keeps the time text of the last second (relier/logs.py): every
line must read exactly as ``logging.Formatter`` with a UTC clock would write it."""

from __future__ import annotations

import logging
import time

from relier.logs import TextFormatter


def test_text_lines_read_as_logging_writes_them() -> None:
    reference = logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s")
    reference.converter = time.gmtime
    ours = TextFormatter()
    # Same second twice, the next second, then back in time (a clock step).
    for created in (1700000000.25, 1700000000.999, 1700000001.0004, 1600000000.5,
                    time.time()):
        record = logging.makeLogRecord({
            "name": "relier.task", "levelno": logging.INFO, "levelname": "INFO",
            "msg": "task %s done", "args": ("t1",), "created": created,
            "msecs": (created - int(created)) * 1000})
        assert ours.format(record) == reference.format(record)
