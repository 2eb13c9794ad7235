"""The figures a benchmark run produces: runs, table rows, latency figures."""

from __future__ import annotations

import statistics
from dataclasses import asdict, dataclass, field
from typing import Any

from benchmarks import latency

#: Columns of the table, in order; "raw" is redis-py alone, not a task system.
SYSTEMS = ("relier", "celery", "taskiq", "dramatiq", "raw")


def r(x: float | None, digits: int) -> float | None:
    return None if x is None else round(x, digits)


@dataclass
class Run:
    """One timed run of one system: its rate, and the CPU used meanwhile."""

    rate: float
    #: CPU seconds per wall second of the worker's process group (processing runs) or of
    #: this process (enqueue runs): 1.0 is one core kept busy.
    cores: float | None
    #: The same for the Redis server.
    redis_cores: float | None
    #: Processing runs: the summed peak RSS (MiB) of the worker's process group.
    peak_rss_mib: float | None = None
    #: Processing runs: the worker group's CPU time per task, in microseconds.
    cpu_us_per_task: float | None = None
    #: Redis server CPU time per task, in microseconds.
    redis_us_per_task: float | None = None

    def rounded(self) -> Run:
        return Run(round(self.rate, 1), r(self.cores, 2), r(self.redis_cores, 2),
                   r(self.peak_rss_mib, 1), r(self.cpu_us_per_task, 1),
                   r(self.redis_us_per_task, 1))


def median(values: list[float]) -> float | None:
    return round(statistics.median(values), 1) if values else None


@dataclass
class Row:
    """One workload, measured for every system that applies to it (median of runs)."""

    key: str
    label: str
    n: int
    configs: dict[str, str]
    runs: dict[str, list[Run]] = field(default_factory=dict)

    def rate(self, system: str) -> float | None:
        return median([run.rate for run in self.runs.get(system, [])])

    def ratio(self, system: str) -> float | None:
        """Relier's rate over ``system``'s (above 1: Relier does more per second)."""
        mine, theirs = self.rate("relier"), self.rate(system)
        return mine / theirs if mine and theirs else None

    def stat(self, system: str, name: str) -> float | None:
        values = [v for run in self.runs.get(system, []) if (v := getattr(run, name)) is not None]
        return median(values)

    def as_json(self) -> dict[str, Any]:
        return {
            "workload": self.key, "label": self.label, "n": self.n, "unit": "tasks/s",
            "rates": {s: self.rate(s) for s in self.runs},
            "ratios": {f"relier/{s}": r(self.ratio(s), 3) for s in self.runs if s != "relier"},
            "cpu_us_per_task": {s: self.stat(s, "cpu_us_per_task") for s in self.runs},
            "peak_rss_mib": {s: self.stat(s, "peak_rss_mib") for s in self.runs},
            "configs": self.configs,
            "runs": {s: [asdict(run) for run in runs] for s, runs in self.runs.items()},
        }


@dataclass
class LatencyFigure:
    """Push-to-start latency and idle memory of one system's workers, over all its runs."""

    system: str
    config: str
    rate: float
    runs: list[latency.LatencyRun] = field(default_factory=list)

    @property
    def latencies_ms(self) -> list[float]:
        # Pooled: with N tasks a run, one run's p99 is only its (N/100)th largest value.
        return [x for run in self.runs for x in run.latencies_ms]

    def stats(self) -> dict[str, float]:
        return latency.latency_stats(self.latencies_ms)

    def idle(self, name: str) -> float | None:
        return median([v for run in self.runs
                       if (v := latency.memory_json(run.idle)[name]) is not None])

    def as_json(self) -> dict[str, Any]:
        return {
            "system": self.system, "config": self.config, "rate_per_s": self.rate,
            "n": len(self.latencies_ms), **self.stats(),
            "idle_rss_mib": self.idle("idle_rss_mib"),
            "idle_pss_mib": self.idle("idle_pss_mib"),
            "runs": [run.summary() for run in self.runs],
        }
