"""The services of docker-compose.yml, run with `podman run` on one network.

podman-compose is not used: the compose file's Redis, Prometheus and Grafana images come
from a registry, which is unreachable here. Redis runs from the Debian base image instead
(its redis-server with the compose file's own arguments); api, worker and worker-recovery
run the image under test with the compose file's entrypoint, command and environment.
Prometheus and Grafana are not started; the test scrapes /metrics as Prometheus would,
over the network, by the service name its config uses.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from tests.container.podman import podman, podman_logs, podman_ok

#: The services the test runs, in start order.
RUN_SERVICES = ("redis", "api", "worker", "worker-recovery")


def compose_services(root: Path) -> dict[str, dict[str, Any]]:
    """docker-compose.yml's services, with its YAML anchors and merges resolved."""
    with (root / "docker-compose.yml").open() as f:
        services: dict[str, dict[str, Any]] = yaml.safe_load(f)["services"]
    return services


class Stack:
    """Containers named ``<prefix>-<service>`` on network ``<prefix>``, each reachable by
    its service name (a network alias) and with that name as its hostname."""

    def __init__(self, services: dict[str, dict[str, Any]], image: str, base_image: str):
        self.services = services
        self.image = image
        self.base_image = base_image
        self.prefix = f"relier-ci-{os.getpid()}"
        self.started: list[str] = []

    def name(self, service: str) -> str:
        return f"{self.prefix}-{service}"

    def up(self) -> None:
        podman("network", "create", self.prefix)
        for service in RUN_SERVICES:
            podman(*self._run_args(service))
            self.started.append(service)

    def _run_args(self, service: str) -> list[str]:
        spec = self.services[service]
        args = ["run", "-d", "--name", self.name(service), "--hostname", service,
                "--network", self.prefix, "--network-alias", service]
        for key, value in (spec.get("environment") or {}).items():
            args += ["-e", f"{key}={value}"]
        if service == "redis":
            # Debian's redis-server, with the compose file's arguments; /data is where the
            # official image keeps its append-only file, /var/lib/redis is Debian's.
            return [*args, self.base_image, *spec["command"], "--dir", "/var/lib/redis"]
        if "entrypoint" in spec:
            args += ["--entrypoint", json.dumps(spec["entrypoint"])]
        return [*args, self.image, *spec["command"]]

    def healthy(self, service: str) -> bool:
        """The service's compose health check, run in its container as the runtime would."""
        test: Sequence[str] = self.services[service]["healthcheck"]["test"]
        assert test[0] == "CMD", test
        return podman_ok("exec", self.name(service), *test[1:])

    def wait_healthy(self, timeout: float) -> float:
        """Seconds until every service passes its health check."""
        started = time.monotonic()
        pending = set(RUN_SERVICES)
        while pending:
            pending = {s for s in pending if not self.healthy(s)}
            if pending and time.monotonic() - started > timeout:
                raise AssertionError(f"not healthy after {timeout}s: {sorted(pending)}\n"
                                     + self.logs_of(*sorted(pending)))
            time.sleep(0.5)
        return time.monotonic() - started

    def exec(self, service: str, *command: str, timeout: float = 60) -> str:
        return podman("exec", self.name(service), *command, timeout=timeout)

    def kill(self, service: str) -> None:
        podman("kill", "--signal", "KILL", self.name(service))

    def logs_of(self, *services: str) -> str:
        return "\n".join(f"--- {s}\n" + podman_logs(self.name(s)) for s in services)

    def down(self) -> None:
        for service in reversed(self.started):
            podman("rm", "-f", "-t", "0", self.name(service), check=False)
        podman("network", "rm", "-f", self.prefix, check=False)
