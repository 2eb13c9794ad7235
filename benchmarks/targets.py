"""Issue 14's targets, each judged met or missed from the figures of one run."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from benchmarks.results import LatencyFigure, Row

#: Ceiling of the I/O-bound target (tasks/s), whatever Relier's own no-op rate.
IO_TARGET_CAP = 20_000.0


@dataclass(frozen=True)
class Target:
    """One target: what was measured against what it had to reach."""

    name: str
    #: The measured value, in the unit of ``goal`` (a ratio, or a multiple of a round trip).
    value: float
    goal: float
    #: True when the value must be at least the goal; False when at most.
    at_least: bool
    detail: str

    @property
    def met(self) -> bool:
        return self.value >= self.goal if self.at_least else self.value <= self.goal

    def as_json(self) -> dict[str, Any]:
        return {**asdict(self), "met": self.met}


def _ratio(rows: dict[str, Row], key: str, system: str, name: str, goal: float
           ) -> Target | None:
    row = rows.get(key)
    ratio = row.ratio(system) if row else None
    if row is None or ratio is None:
        return None
    detail = f"Relier {row.rate('relier'):,.0f}/s vs {system} {row.rate(system):,.0f}/s"
    return Target(name, round(ratio, 3), goal, True, detail)


def _io(rows: dict[str, Row]) -> Target | None:
    noop, io = rows.get("noop"), rows.get("io")
    own, rate = (noop.rate("relier") if noop else None), (io.rate("relier") if io else None)
    if not own or not rate:
        return None
    ceiling = min(IO_TARGET_CAP, own)
    return Target("I/O-bound >= 90% of min(20,000/s, Relier's no-op rate)",
                  round(rate / ceiling, 3), 0.9, True,
                  f"I/O {rate:,.0f}/s vs min(20,000, {own:,.0f})/s")


def _latency(latencies: list[LatencyFigure], rtt_ms: float | None) -> list[Target]:
    relier = next((f for f in latencies if f.system == "relier" and f.runs), None)
    if relier is None or not rtt_ms:
        return []
    stats = relier.stats()
    return [Target(f"push -> start {name} <= {goal:g} raw round trips",
                   round(stats[key] / rtt_ms, 2), goal, False,
                   f"{stats[key]:.2f} ms vs round trip {rtt_ms:.3f} ms")
            for name, key, goal in (("p50", "p50_ms", 3.0), ("p99", "p99_ms", 10.0))]


def _cpu(rows: dict[str, Row], baseline_us: float | None) -> Target | None:
    noop = rows.get("noop")
    used = noop.stat("relier", "cpu_us_per_task") if noop else None
    if used is None or baseline_us is None:
        return None
    return Target("worker CPU per no-op task <= half of the baseline",
                  round(used / baseline_us, 3), 0.5, False,
                  f"{used:.0f} us/task vs baseline {baseline_us:.0f} us/task")


def judge(rows: dict[str, Row], latencies: list[LatencyFigure], rtt_ms: float | None,
          cpu_baseline_us: float | None) -> list[Target]:
    """Every target the run has the figures for (a system left out leaves its target out)."""
    found = [
        _ratio(rows, "noop", "celery", "no-op >= 10x Celery's best", 10.0),
        _ratio(rows, "noop", "taskiq", "no-op >= 3x taskiq", 3.0),
        _io(rows),
        _ratio(rows, "push", "raw", "push >= 75% of raw round trips", 0.75),
        _ratio(rows, "apush", "raw", "100 concurrent apush >= 75% of raw 50 in flight", 0.75),
        _ratio(rows, "push_many", "raw", "push_many >= 75% of raw pipelined", 0.75),
        *_latency(latencies, rtt_ms),
        _cpu(rows, cpu_baseline_us),
    ]
    return [t for t in found if t is not None]
