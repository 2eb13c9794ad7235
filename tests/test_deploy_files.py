"""docker-compose.yml and the Dockerfile keep the promises the docs make about them
(the container test runs them; these checks are the fast half, run everywhere)."""

from __future__ import annotations

import re
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from relier.cli import cli
from relier.settings import Settings
from tests.conftest import ROOT
from tests.container.stack import compose_services


@pytest.fixture(scope="module")
def services() -> dict[str, dict[str, Any]]:
    return compose_services(ROOT)


def option(command: list[str], flag: str) -> str:
    return command[command.index(flag) + 1]


def seconds(duration: str) -> float:
    match = re.fullmatch(r"(\d+)s", duration)
    assert match, duration
    return float(match.group(1))


def test_redis_persists_and_never_evicts(services: dict[str, dict[str, Any]]) -> None:
    command = services["redis"]["command"]
    assert option(command, "--appendonly") == "yes"
    assert option(command, "--maxmemory-policy") == "noeviction"


def test_recovery_pool_alone_consumes_re_queue(services: dict[str, dict[str, Any]]) -> None:
    assert option(services["worker-recovery"]["command"], "-Q") == "re-queue"
    main_pool = option(services["worker"]["command"], "-Q").split(",")
    assert {"high_priority", "default", "low_priority"} <= set(main_pool)
    assert "re-queue" not in main_pool


@pytest.mark.parametrize("name", ["worker", "worker-recovery"])
def test_workers_outlast_their_grace_and_check_their_heartbeat(
        services: dict[str, dict[str, Any]], name: str) -> None:
    spec = services[name]
    grace = float(spec["environment"].get("RELIER_SHUTDOWN_GRACE", Settings().shutdown_grace))
    assert seconds(spec["stop_grace_period"]) > grace
    assert spec["healthcheck"]["test"] == ["CMD", "relier", "health"]
    assert option(spec["command"], "--metrics-port") == "9100"


def test_every_service_has_a_health_check_and_a_restart_policy(
        services: dict[str, dict[str, Any]]) -> None:
    for name, spec in services.items():
        assert spec["healthcheck"]["test"][0] == "CMD", name
        assert spec["restart"] == "unless-stopped", name


def test_prometheus_scrapes_both_pools_and_grafana_gets_the_dashboard(
        services: dict[str, dict[str, Any]]) -> None:
    prometheus = yaml.safe_load((ROOT / "docker" / "prometheus.yml").read_text())
    (target,) = prometheus["scrape_configs"][0]["dns_sd_configs"]
    assert set(target["names"]) == {"worker", "worker-recovery"} and target["port"] == 9100
    mounts = services["grafana"]["volumes"]
    assert "./docs/grafana-dashboard.json:/var/lib/grafana/dashboards/relier.json:ro" in mounts
    provider = yaml.safe_load(
        (ROOT / "docker/grafana/provisioning/dashboards/relier.yml").read_text())
    assert provider["providers"][0]["options"]["path"] == "/var/lib/grafana/dashboards"


def test_dockerfile_health_check_is_a_real_command() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert 'CMD ["relier", "health"]' in dockerfile
    assert CliRunner().invoke(cli, ["health", "--help"]).exit_code == 0
    assert re.search(r"^USER relier$", dockerfile, re.M)
    assert "ARG BASE_IMAGE=python:3.12-slim" in dockerfile
