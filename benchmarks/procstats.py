"""CPU and memory of worker processes, read from Linux's /proc (None elsewhere).

A worker is measured as its whole process group (it is started in its own session):
for Celery's prefork pool that is the main process and its pool children; for Relier
and Celery's threads pool, one process.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from types import TracebackType

_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
_KIB_PER_MIB = 1024.0


# -- CPU -----------------------------------------------------------------------------------


def _stat_fields(pid: str) -> list[str] | None:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            # Fields after "(comm)": state ppid pgrp ... utime(12th) stime(13th).
            return stat.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def process_cpu(pid: int) -> float | None:
    """CPU seconds used so far by one process (threads included)."""
    fields = _stat_fields(str(pid))
    return (int(fields[11]) + int(fields[12])) / _TICKS if fields else None


def group_cpu(pgid: int) -> float | None:
    """CPU seconds used so far by every live process of the group (threads included)."""
    if not os.path.isdir("/proc"):
        return None
    total = 0.0
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            fields = _stat_fields(pid)
            if fields and int(fields[2]) == pgid:
                total += (int(fields[11]) + int(fields[12])) / _TICKS
    return total


def cores(before: float | None, after: float | None, seconds: float) -> float | None:
    """CPU seconds per wall second between two readings: 1.0 is one core kept busy."""
    if before is None or after is None or seconds <= 0:
        return None
    return (after - before) / seconds


# -- memory --------------------------------------------------------------------------------


def group_pids(pgid: int) -> list[int]:
    """The live processes of the group (empty where there is no /proc)."""
    if not os.path.isdir("/proc"):
        return []
    found = []
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            fields = _stat_fields(pid)
            if fields and int(fields[2]) == pgid:
                found.append(int(pid))
    return found


def _kib_fields(path: str, names: tuple[str, ...]) -> dict[str, int] | None:
    """``Name:  1234 kB`` lines of a /proc file, for the names asked."""
    try:
        with open(path) as lines:
            values = {}
            for line in lines:
                name, _, rest = line.partition(":")
                if name in names:
                    values[name] = int(rest.split()[0])
            return values
    except (OSError, ValueError, IndexError):
        return None


def rss_kib(pid: int) -> int | None:
    """Resident set size now (VmRSS): cheap to read, so the peak sampler uses it."""
    fields = _kib_fields(f"/proc/{pid}/status", ("VmRSS",))
    return fields.get("VmRSS") if fields else None


@dataclass(frozen=True)
class Memory:
    """Memory of a process group, in MiB."""

    #: Sum of each process's resident set size. Pages that forked processes still share
    #: (Celery's prefork children and their parent) are counted once per process.
    rss_mib: float
    #: Sum of each process's proportional set size: a page shared by k processes counts
    #: 1/k in each, so shared pages are counted once in the sum. None without smaps_rollup.
    pss_mib: float | None


def group_memory(pgid: int) -> Memory | None:
    """RSS and PSS of every process of the group now; None when it cannot be read."""
    rss = pss = 0
    has_pss = True
    pids = group_pids(pgid)
    for pid in pids:
        rollup = _kib_fields(f"/proc/{pid}/smaps_rollup", ("Rss", "Pss"))
        if rollup and "Rss" in rollup and "Pss" in rollup:
            rss += rollup["Rss"]
            pss += rollup["Pss"]
        else:  # no smaps_rollup (old kernel) or the process just ended
            has_pss = False
            rss += rss_kib(pid) or 0
    if not pids or rss == 0:
        return None
    return Memory(rss / _KIB_PER_MIB, pss / _KIB_PER_MIB if has_pss else None)


class PeakRss:
    """Samples the group's summed RSS in a thread while in the ``with`` block.

    ``peak_mib`` is the largest sum seen (None if nothing could be read). Sampling every
    ``interval`` seconds reads one small /proc file per process; the group's membership
    is looked up again every ``rescan`` seconds (a /proc scan costs ~1 ms).
    """

    def __init__(self, pgid: int, interval: float = 0.02, rescan: float = 1.0) -> None:
        self.pgid = pgid
        self.interval = interval
        self.rescan = rescan
        self.peak_mib: float | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, name="peak-rss", daemon=True)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._stop.set()
        self._thread.join()

    def _sample(self) -> None:
        pids: list[int] = []
        scanned = float("-inf")
        peak = 0
        while True:
            if time.monotonic() - scanned >= self.rescan:
                pids, scanned = group_pids(self.pgid), time.monotonic()
            peak = max(peak, sum(rss_kib(pid) or 0 for pid in pids))
            # The last sample is taken after the stop was asked for: the end is seen too.
            if self._stop.is_set():
                break
            self._stop.wait(self.interval)
        self.peak_mib = peak / _KIB_PER_MIB if peak else None
