"""CPU and memory of worker processes, read from Linux's /proc (None elsewhere).

A worker is measured as its whole session (it is started in a session of its own):
every process it starts stays in that session, also those that open a process group
of their own (``relier worker --processes N`` puts each child in its own group).
The ``pgid`` arguments below are that session's id, the worker's pid.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from types import TracebackType

_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
_KIB_PER_MIB = 1024.0
#: Index of the session id among the fields after "(comm)" in /proc/PID/stat.
_SESSION = 3


# -- CPU -----------------------------------------------------------------------------------


def _stat_fields(pid: str) -> list[str] | None:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            # Fields after "(comm)": state ppid pgrp session ... utime(12th) stime(13th).
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
            if fields and int(fields[_SESSION]) == pgid:
                total += (int(fields[11]) + int(fields[12])) / _TICKS
    return total


def machine_cpu() -> float | None:
    """CPU seconds the whole machine has been busy (every core, any process), from
    /proc/stat: user, nice, system, irq, softirq and steal time."""
    try:
        with open("/proc/stat") as stat:
            fields = stat.readline().split()
    except OSError:
        return None
    user, nice, system, _idle, _iowait, irq, softirq, steal = map(int, fields[1:9])
    return (user + nice + system + irq + softirq + steal) / _TICKS


def cores(before: float | None, after: float | None, seconds: float) -> float | None:
    """CPU seconds per wall second between two readings: 1.0 is one core kept busy."""
    if before is None or after is None or seconds <= 0:
        return None
    return (after - before) / seconds


# -- memory --------------------------------------------------------------------------------


def group_pids(pgid: int, live_only: bool = False) -> list[int]:
    """The processes of the session (empty where there is no /proc); zombies too unless
    ``live_only``."""
    if not os.path.isdir("/proc"):
        return []
    found = []
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            fields = _stat_fields(pid)
            if fields and int(fields[_SESSION]) == pgid and not (live_only and fields[0] == "Z"):
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
            status = _kib_fields(f"/proc/{pid}/status", ("VmRSS",))
            rss += status.get("VmRSS", 0) if status else 0
    if not pids or rss == 0:
        return None
    return Memory(rss / _KIB_PER_MIB, pss / _KIB_PER_MIB if has_pss else None)


class PeakRss:
    """The group's peak RSS while in the ``with`` block, from the kernel's own record.

    On entry each process's high-water mark (``VmHWM``) is reset to its current RSS
    (``5`` written to ``/proc/PID/clear_refs``, Linux 4.0+); on exit the marks are read
    and summed. Nothing runs in between: no sampling that could cost the worker CPU,
    and no peak missed between samples. The sum of each process's own peak can exceed
    the group's peak at any one instant when processes peak at different times.
    ``peak_mib`` stays None when a mark could not be reset or read.
    """

    def __init__(self, pgid: int) -> None:
        self.pgid = pgid
        self.peak_mib: float | None = None
        self._reset: set[int] = set()

    def __enter__(self) -> PeakRss:
        for pid in group_pids(self.pgid):
            try:
                with open(f"/proc/{pid}/clear_refs", "w") as clear_refs:
                    clear_refs.write("5")
            except OSError:  # not resettable: the marks would include start-up
                self._reset.clear()
                return self
            self._reset.add(pid)
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        pids = group_pids(self.pgid)
        # A process started inside the block has a mark of its own life only: fine.
        # One that ended inside it is lost, and so would be its peak: no figure then.
        if not self._reset or not self._reset <= set(pids):
            return
        total = 0
        for pid in pids:
            fields = _kib_fields(f"/proc/{pid}/status", ("VmHWM",))
            if not fields or "VmHWM" not in fields:
                return
            total += fields["VmHWM"]
        self.peak_mib = total / _KIB_PER_MIB
