"""One ``/metrics`` for all of a supervisor's worker processes (``--processes N``).

Each child writes its counters to prometheus-client's multiprocess files in a private
directory (it is told where through its environment); the supervisor serves them merged,
with the queue metrics read from Redis at scrape time, and drops a dead child's live
gauges (its counters stay, so totals never go down). The supervisor reaches this only
through :class:`relier.runtime.hooks.ChildMetrics`.
"""

from __future__ import annotations

import shutil
import tempfile

from relier.observability.metrics import (
    MULTIPROC_ENV,
    SUPERVISED_METRICS_ENV,
    MetricsServer,
    supervisor_registry,
)
from relier.settings import Settings
from relier.store import connections


class SupervisedMetrics:
    """The supervisor's side of its children's metrics."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._directory: str | None = None
        self._server: MetricsServer | None = None

    def start(self) -> None:
        """Make the shared directory and serve it (raises if the port is taken)."""
        settings = self._settings
        self._directory = tempfile.mkdtemp(prefix="relier-metrics-")
        registry = supervisor_registry(
            lambda: connections.sync_client(settings.redis_url, socket_timeout=3,
                                            socket_connect_timeout=3),
            self._directory)
        self._server = MetricsServer(registry, settings.metrics_host, settings.metrics_port)

    def child_env(self) -> dict[str, str]:
        """What a child's environment needs to write into the shared directory."""
        if self._directory is None:
            return {}
        return {MULTIPROC_ENV: self._directory, SUPERVISED_METRICS_ENV: "1"}

    def forget(self, pid: int) -> None:
        """Drop a dead child's live gauges (its counters stay: totals never go down)."""
        if self._directory is not None:
            from prometheus_client import multiprocess

            multiprocess.mark_process_dead(pid, self._directory)  # type: ignore[no-untyped-call]

    def close(self) -> None:
        """Stop serving and remove the directory."""
        if self._server is not None:
            self._server.close()
            self._server = None
        if self._directory is not None:
            shutil.rmtree(self._directory, ignore_errors=True)
            self._directory = None
