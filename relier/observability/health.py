"""Is a worker on this host alive? The question a container's HEALTHCHECK asks.

A worker counts as healthy when its registry entry names this host and its heartbeat
key still exists: the same test the resurrector applies, so a container reported
healthy is one whose tasks Phoenix would not take away. Entries that do not decode
(every byte read from Redis is hostile) are counted and skipped, never trusted.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass, field

from relier.protocol import registry
from relier.store import registry as registry_store
from relier.store.clients import SyncClient


@dataclass(frozen=True, slots=True)
class HostHealth:
    """What the registry says about the workers of one host."""

    host: str
    #: Ids of this host's workers whose heartbeat key exists (alive or draining).
    beating: list[str] = field(default_factory=list)
    #: Ids of this host's workers that are registered but whose heartbeat has run out.
    silent: list[str] = field(default_factory=list)
    #: Registry entries that could not be decoded (skipped).
    unreadable: int = 0

    @property
    def healthy(self) -> bool:
        return bool(self.beating)

    def summary(self) -> str:
        """One line for the health check's log."""
        if self.healthy:
            return f"ok: {len(self.beating)} worker(s) beating on {self.host}: " + ", ".join(
                self.beating)
        if self.silent:
            return f"unhealthy: worker(s) on {self.host} stopped beating: " + ", ".join(
                self.silent)
        return f"unhealthy: no worker registered on {self.host}"


def check_host(client: SyncClient, host: str | None = None) -> HostHealth:
    """The health of the workers registered by ``host`` (default: this machine's name)."""
    host = host or socket.gethostname()
    found = registry_store.entries_sync(client)
    mine = [info for info in found.workers if info.host == host]
    alive = registry_store.beating_sync(client, [info.id for info in mine])
    beating = [w.id for w, a in zip(mine, alive, strict=True) if a and w.state != registry.DEAD]
    silent = [w.id for w in mine if w.id not in beating]
    return HostHealth(host=host, beating=beating, silent=silent,
                      unreadable=found.unreadable)
