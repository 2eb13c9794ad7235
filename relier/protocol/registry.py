"""The worker registry entry: who a worker is and what it consumes.

Entries live in the ``relier:workers`` hash (worker id -> JSON). Liveness is not in the
entry but in the worker's heartbeat key, whose TTL runs out when the worker stops
beating; the resurrector reads both.
"""

from __future__ import annotations

from typing import Final

import msgspec

ALIVE: Final = "alive"
STOPPING: Final = "stopping"
DEAD: Final = "dead"


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
    #: When the resurrector found it dead, and how many of its messages it recovered.
    died_at: float | None = None
    resurrected: int = 0


_decoder: Final = msgspec.json.Decoder(WorkerInfo)
_encoder: Final = msgspec.json.Encoder()


def encode(info: WorkerInfo) -> bytes:
    return _encoder.encode(info)


def decode(raw: bytes | str) -> WorkerInfo:
    return _decoder.decode(raw)
