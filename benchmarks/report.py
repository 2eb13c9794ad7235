"""The side-by-side tables, the targets, and the run's environment for the JSON."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from importlib import metadata
from typing import Any

from rich.console import Console
from rich.table import Table

from benchmarks.results import SYSTEMS, LatencyFigure, Row
from benchmarks.targets import Target
from benchmarks.workers import ROOT

NOTES = (
    "Rates are medians of the runs (every run is in the JSON); ratio = Relier / other.",
    "Every system runs 2 worker processes with results OFF (Relier ignore_result, Celery "
    "and dramatiq without a result backend, taskiq's dummy backend).",
    "processing: the queue is filled first (each system's own producer, untimed), then the "
    "workers start; the clock runs from their first take until queue and in-flight are empty.",
    "CPU us/task: CPU time of every process of the workers' session over the timed run, per task.",
    "raw: redis-py alone against the same server (LPUSH of a message-sized payload).",
)


def _rate(value: float | None) -> str:
    return "—" if value is None else f"{value:,.0f}/s"


def _ratio(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}x"


def _us(value: float | None) -> str:
    return "—" if value is None else f"{value:,.0f}"


def throughput_table(rows: list[Row], title: str) -> Table:
    shown = [s for s in SYSTEMS if any(s in row.runs for row in rows)]
    table = Table(title=title)
    table.add_column("workload", overflow="fold")
    table.add_column("N", justify="right")
    for system in shown:
        table.add_column(system.capitalize(), justify="right")
    for system in shown[1:]:
        table.add_column(f"R/{system}", justify="right")
    table.add_column("CPU us/task " + " / ".join(s[0].upper() for s in shown[:4]), justify="right")
    for row in rows:
        table.add_row(row.label, f"{row.n:,}", *(_rate(row.rate(s)) for s in shown),
                      *(_ratio(row.ratio(s)) for s in shown[1:]),
                      " / ".join(_us(row.stat(s, "cpu_us_per_task")) for s in shown[:4]))
    return table


def latency_table(latencies: list[LatencyFigure], rtt: dict[str, float] | None) -> Table:
    n = len(latencies[0].latencies_ms) if latencies else 0
    table = Table(title=f"push -> start on idle workers ({n} tasks each, one at a time)")
    for name in ("measure", *(f.system.capitalize() for f in latencies), "raw round trip"):
        table.add_column(name, justify="right")
    for label, key in (("p50", "p50_ms"), ("p99", "p99_ms"), ("max", "max_ms")):
        cells = [f"{f.stats()[key]:.2f} ms" for f in latencies]
        table.add_row(label, *cells, f"{rtt[key]:.3f} ms" if rtt else "—")
    for label, key in (("idle RSS", "idle_rss_mib"), ("idle PSS", "idle_pss_mib")):
        table.add_row(label, *(_mib(f.idle(key)) for f in latencies), "")
    return table


def _mib(value: float | None) -> str:
    return "—" if value is None else f"{value:.0f} MiB"


def targets_table(targets: list[Target]) -> Table:
    table = Table(title="Issue 14 targets")
    for name in ("target", "measured", "goal", "", "figures"):
        table.add_column(name, overflow="fold")
    for t in targets:
        table.add_row(t.name, f"{t.value:g}", ("≥ " if t.at_least else "≤ ") + f"{t.goal:g}",
                      "met" if t.met else "MISSED", t.detail)
    return table


def print_all(rows: list[Row], latencies: list[LatencyFigure], rtt: dict[str, float] | None,
              targets: list[Target], meta: dict[str, Any]) -> None:
    console = Console(width=None if sys.stdout.isatty() else 160, emoji=False)
    load = meta.get("load_average")
    title = (f"Relier {meta['relier']} ({meta['commit']}): {meta['cpus']} CPUs, {meta['server']}, "
             f"Python {meta['python']}, median of {meta['repeat']}, load {load}")
    console.print(throughput_table(rows, title))
    for row in rows:
        for system, config in row.configs.items():
            console.print(f"  {row.key:>9} {system:>8}: {config}", highlight=False)
    for note in NOTES:
        console.print(f"  * {note}", highlight=False)
    if latencies:
        console.print(latency_table(latencies, rtt))
    if targets:
        console.print(targets_table(targets))


def git_commit() -> str | None:
    """The checked-out commit (``+dirty`` with local changes), when this is a git tree."""
    try:
        def git(*args: str) -> str:
            return subprocess.run(["git", *args], cwd=ROOT, check=True, capture_output=True,
                                  text=True, timeout=10).stdout.strip()
        head, dirty = git("rev-parse", "--short", "HEAD"), git("status", "--porcelain", "-uno")
    except (OSError, subprocess.SubprocessError):
        return None
    return f"{head}+dirty" if dirty else head


def version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def environment(info: dict[str, Any], binary: str | None) -> dict[str, Any]:
    """Versions and machine, from the server's ``INFO server`` and the installed packages."""
    name = "valkey" if "valkey_version" in info else "redis"
    packages = ("relier", "celery", "kombu", "taskiq", "taskiq-redis", "dramatiq", "redis")
    return {
        **{p.replace("-", "_"): version(p) for p in packages},
        "commit": git_commit(),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "server": f"{name} {info.get('valkey_version') or info.get('redis_version')}",
        "server_binary": binary,
        "load_average": load_average(),
    }


def load_average() -> list[float] | None:
    return [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None
