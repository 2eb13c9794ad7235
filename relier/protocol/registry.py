"""The worker registry entry: who a worker is and what it consumes.

Entries live in the ``relier:workers`` hash (worker id -> JSON). Liveness is not in the
entry but in the worker's heartbeat key, whose TTL runs out when the worker stops
beating; the resurrector reads both.
"""

from __future__ import annotations

from typing import Final

import msgspec

from relier.protocol import hostile

ALIVE: Final = "alive"
STOPPING: Final = "stopping"
DEAD: Final = "dead"
#: A heartbeat publishes at most this many running tasks (``in_flight`` stays exact).
MAX_PUBLISHED_RUNNING: Final = 1000
#: Seconds a worker's published table of running tasks outlives its last heartbeat (as
#: long as a dead worker's registry entry is kept, so `inspect` can name what it ran).
RUNNING_TABLE_TTL_S: Final = 3600


class RunningTask(msgspec.Struct, kw_only=True):
    """One task a worker is running, as its heartbeat publishes it."""

    task_id: str
    task: str
    #: The task's own queue (not ``re-queue``, even when it came back through it).
    queue: str
    #: Unix time the worker took the message (a slot is free for every message taken).
    started_at: float
    attempt: int = 1
    resurrections: int = 0


class WorkerInfo(msgspec.Struct, kw_only=True):
    """One worker, as ``relier inspect --json`` shows it."""

    id: str
    host: str
    pid: int
    queues: list[str]
    concurrency: int
    in_flight: int = 0
    started_at: float
    last_heartbeat: float
    state: str = ALIVE
    #: The tasks it runs, name -> version (what a rolling deploy hands over to it).
    tasks: dict[str, int] = msgspec.field(default_factory=dict)
    #: When the resurrector found it dead, and how many of its messages it recovered.
    died_at: float | None = None
    resurrected: int = 0
    #: Ids of the tasks the resurrector took back from it when it died.
    resurrected_ids: list[str] = msgspec.field(default_factory=list)


_decoder: Final = msgspec.json.Decoder(WorkerInfo)
_encoder: Final = msgspec.json.Encoder()


_running_decoder: Final = msgspec.json.Decoder(list[RunningTask])


def encode_running(tasks: list[RunningTask]) -> bytes:
    return _encoder.encode(tasks)


def decode_running(raw: bytes | str) -> list[RunningTask]:
    """A published running table; an unreadable one reads as empty (it is only a view)."""
    return hostile.read_or_none(_running_decoder.decode, raw) or []


def encode(info: WorkerInfo) -> bytes:
    return _encoder.encode(info)


def decode(raw: bytes | str) -> WorkerInfo:
    """One registry entry; :class:`PayloadError` if it is not one."""
    return hostile.read(_decoder.decode, raw, "worker registry entry")

