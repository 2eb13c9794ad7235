"""Which system does what for each workload, run interleaved so load drift hits all alike."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from benchmarks import raw
from benchmarks.common import IO_SLEEP_S, QUEUE
from benchmarks.measure import CONCURRENT_PUSHES, Bench
from benchmarks.results import LatencyFigure, Row, Run
from benchmarks.systems import BULK_BATCH, Celery, Dramatiq, Relier, System, Taskiq

Measure = Callable[[], Run]
Say = Callable[[str], None]


def interleave(row: Row, measures: dict[str, Measure], repeat: int, say: Say) -> Row:
    """Each system's measurement ``repeat`` times, round-robin; the runs go in the row."""
    say(f"{row.label}: {row.n:,} x{repeat}: " + ", ".join(measures))
    for _ in range(repeat):
        for system, measure in measures.items():
            row.runs.setdefault(system, []).append(measure().rounded())
    return row


def processing(bench: Bench, systems: dict[str, System], task: str, label: str, n: int,
               repeat: int, say: Say) -> Row:
    row = Row(task, label, n, {name: s.config(task) for name, s in systems.items()})
    measures = {name: _processing(bench, s, task, n) for name, s in systems.items()}
    return interleave(row, measures, repeat, say)


def _processing(bench: Bench, system: System, task: str, n: int) -> Measure:
    return lambda: bench.processing(system, task, n)


def push_one_by_one(bench: Bench, systems: dict[str, System], with_raw: bool, n: int,
                    repeat: int, say: Say) -> Row:
    measures: dict[str, Measure] = {}
    configs: dict[str, str] = {}
    for name, system in systems.items():
        measures[name], configs[name] = _single(bench, system, n)
    if with_raw:
        measures["raw"] = lambda: bench.raw_round_trips(n, QUEUE)
        configs["raw"] = "redis-py LPUSH, one round trip at a time"
    return interleave(Row("push", "push one at a time", n, configs), measures, repeat, say)


def _single(bench: Bench, system: System, n: int) -> tuple[Measure, str]:
    if isinstance(system, Relier):
        task = system.task("noop")
        return (lambda: bench.enqueue(lambda k: _loop(task.push, k), n, QUEUE),
                "task.push() in a loop (sync)")
    if isinstance(system, Celery):
        return (lambda: bench.enqueue(lambda k: _loop(system.app.noop.delay, k), n, QUEUE),
                "task.delay() in a loop")
    if isinstance(system, Dramatiq):
        return (lambda: bench.enqueue(lambda k: _loop(system.app.noop.send, k), n,
                                      f"dramatiq:{QUEUE}"), "actor.send() in a loop")
    assert isinstance(system, Taskiq)
    return (lambda: bench.enqueue(lambda k: system.run(_aloop(system.app.noop.kiq, k)), n,
                                  QUEUE), "await task.kiq() in a loop")


def _loop(push: Callable[[], Any], n: int) -> None:
    for _ in range(n):
        push()


async def _aloop(push: Callable[[], Any], n: int) -> None:
    for _ in range(n):
        await push()


def push_concurrent(bench: Bench, systems: dict[str, System], with_raw: bool, n: int,
                    repeat: int, say: Say) -> Row:
    measures: dict[str, Measure] = {}
    configs: dict[str, str] = {}
    if (relier := systems.get("relier")) is not None:
        assert isinstance(relier, Relier)
        apush = relier.task("noop").apush
        measures["relier"] = lambda: bench.aenqueue(apush, n, QUEUE,
                                                    close=relier.app.app.aclose)
        configs["relier"] = f"await task.apush(), {CONCURRENT_PUSHES} at once"
    if (taskiq := systems.get("taskiq")) is not None:
        assert isinstance(taskiq, Taskiq)
        kiq = taskiq.app.noop.kiq
        measures["taskiq"] = lambda: bench.aenqueue(kiq, n, QUEUE, run_on=taskiq.run)
        configs["taskiq"] = f"await task.kiq(), {CONCURRENT_PUSHES} at once"
    if with_raw:
        measures["raw"] = lambda: bench.raw_enqueue(lambda k: raw.in_flight(bench.url, k), n,
                                                    QUEUE)
        configs["raw"] = f"redis.asyncio LPUSH, {raw.IN_FLIGHT} in flight"
    row = Row("apush", f"{CONCURRENT_PUSHES} concurrent apush", n, configs)
    return interleave(row, measures, repeat, say)


def push_bulk(bench: Bench, systems: dict[str, System], with_raw: bool, n: int,
              repeat: int, say: Say) -> Row:
    measures: dict[str, Measure] = {}
    configs: dict[str, str] = {}
    if (relier := systems.get("relier")) is not None:
        measures["relier"] = lambda: bench.enqueue(lambda k: relier.fill("noop", k), n, QUEUE)
        configs["relier"] = f"task.push_many(), batches of {BULK_BATCH}"
    if (celery := systems.get("celery")) is not None:
        measures["celery"] = lambda: bench.enqueue(lambda k: celery.fill("noop", k), n, QUEUE)
        configs["celery"] = "apply_async(producer=p) in a loop (no pipelined bulk send)"
    if with_raw:
        measures["raw"] = lambda: bench.enqueue(lambda k: raw.pipelined(bench.client, k), n,
                                                QUEUE)
        configs["raw"] = f"redis-py pipelined LPUSH, batches of {raw.BATCH}"
    return interleave(Row("push_many", "push_many bulk", n, configs), measures, repeat, say)


def push_to_start(bench: Bench, systems: dict[str, System], n: int, rate: float, repeat: int,
                  say: Say) -> list[LatencyFigure]:
    """Push-to-start latency on idle workers, each system's runs interleaved."""
    figures = {name: LatencyFigure(name, s.config("stamp"), rate)
               for name, s in systems.items()}
    say(f"push -> start latency: {n} tasks at {rate:g}/s x{repeat}: " + ", ".join(figures))
    for _ in range(repeat):
        for name, system in systems.items():
            figures[name].runs.append(bench.latency(system, n, rate))
    return list(figures.values())


IO_LABEL = f"I/O-bound ({IO_SLEEP_S * 1000:.0f} ms sleep)"
