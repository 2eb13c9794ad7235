"""The chaos run: 3 workers under kill -9, a freeze, a SIGTERM and a Redis restart.

Run: python -m benchmarks.chaos [--tasks 3000] [--duration 150]

A private Redis with the append-only file (``appendfsync always``), 3 `relier worker`
processes at default heartbeat settings, and a producer pushing a mix of fast, slow,
sync ``def``, idempotent and failing tasks at a steady rate. Meanwhile: a kill -9 of a
random worker every few seconds (a new one takes its place), one SIGSTOP/SIGCONT past
the heartbeat TTL, one SIGTERM, one Redis restart (killed, restarted from its AOF) a few
seconds after a kill. Each task writes start/finish records
to a ledger file outside Relier; at the end every task must be accounted for (a result,
or a DLQ entry with a reason) and every re-run explained by a fault
(benchmarks/chaos_ledger.py). The bounded version runs in CI: tests/chaos/.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis

from benchmarks import chaos_tasks
from benchmarks.chaos_ledger import (
    Fault,
    Verdict,
    check_idempotent,
    check_reruns,
    read_ledger,
    recovery_latencies,
)
from relier.embedded import EmbeddedServer
from relier.protocol import dead_letter, results
from relier.store import keys

ROOT = Path(__file__).resolve().parent.parent
#: Heartbeat TTL at default settings; the freeze lasts past it.
TTL_S = 6.0
#: The issue's bound on kill → running again (p99).
RECOVERY_P99_S = 12.0


@dataclass(frozen=True)
class Plan:
    """What the run does, in seconds from its start."""

    tasks: int = 3000
    duration: float = 150.0
    concurrency: int = 8
    kill_every: float = 6.0
    freeze_at: float = 0.3  # fractions of ``duration``
    term_at: float = 0.5
    redis_at: float = 0.7
    settle_s: float = 120.0
    seed: int = 12


class Fleet:
    """The worker processes, replaced when one is killed or stopped."""

    def __init__(self, url: str, ledger: Path, logs: Path, concurrency: int) -> None:
        self._url, self._ledger, self._logs = url, ledger, logs
        self._concurrency = concurrency
        self.procs: list[subprocess.Popen[bytes]] = []
        self._started = 0
        self._lock = threading.RLock()
        self._closed = False

    def start(self) -> subprocess.Popen[bytes]:
        self._started += 1
        out = open(self._logs / f"worker-{self._started}.log", "wb")  # noqa: SIM115
        proc = subprocess.Popen(
            [sys.executable, "-m", "relier", "worker", "-A", "benchmarks.chaos_tasks:app",
             "-Q", "default,re-queue", "--concurrency", str(self._concurrency),
             "--redis-url", self._url, "--log-level", "debug"],
            cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            env={**os.environ, "CHAOS_LEDGER": str(self._ledger), "PYTHONUNBUFFERED": "1"})
        out.close()
        self.procs.append(proc)
        return proc

    def replace(self, proc: subprocess.Popen[bytes]) -> None:
        """Start a worker in place of ``proc`` (once, whichever thread asks first)."""
        with self._lock:
            if proc not in self.procs or self._closed:
                return
            self.procs.remove(proc)
            self.start()

    def running(self) -> list[subprocess.Popen[bytes]]:
        with self._lock:
            return [p for p in self.procs if p.poll() is None]

    def stop_all(self) -> None:
        with self._lock:
            self._closed = True  # no replacement starts after this
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGCONT)
                proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(40)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


class Producer(threading.Thread):
    """Pushes the task mix at a steady rate; paused while the run restarts Redis."""

    KINDS = (("fast", 35), ("slow", 20), ("sync", 15), ("idempotent", 20), ("failing", 10))

    def __init__(self, plan: Plan, rng: random.Random) -> None:
        super().__init__(daemon=True)
        self._plan, self._rng = plan, rng
        self.paused = threading.Lock()
        self.pushed: list[tuple[str, str]] = []

    def run(self) -> None:
        every = self._plan.duration * 0.85 / self._plan.tasks
        names, weights = zip(*self.KINDS, strict=True)
        for n in range(self._plan.tasks):
            kind = self._rng.choices(names, weights)[0]
            with self.paused:
                self.pushed.append((self._push(kind, n), kind))
            time.sleep(every)

    def _push(self, kind: str, n: int) -> str:
        if kind == "slow":
            return chaos_tasks.slow.push(n, self._rng.uniform(0.3, 1.5)).id
        task: Any = getattr(chaos_tasks, kind)
        return str(task.push(n).id)


class Chaos:
    """Injects the faults on schedule and records them."""

    def __init__(self, plan: Plan, fleet: Fleet, server: EmbeddedServer, producer: Producer,
                 rng: random.Random) -> None:
        self._plan, self._fleet, self._server = plan, fleet, server
        self._producer, self._rng = producer, rng
        self.faults: list[Fault] = []
        #: Frozen or stopping workers: not picked for another fault.
        self._spared: set[int] = set()

    def run(self, started: float) -> None:
        plan = self._plan
        scheduled = {"freeze": plan.freeze_at, "term": plan.term_at, "redis": plan.redis_at}
        next_kill = started + plan.kill_every
        while time.monotonic() - started < plan.duration:
            now = time.monotonic()
            for kind, fraction in list(scheduled.items()):
                if now - started >= fraction * plan.duration:
                    del scheduled[kind]
                    getattr(self, kind)()
            if now >= next_kill:
                self.kill()
                next_kill = now + self._rng.uniform(0.5, 1.5) * plan.kill_every
            time.sleep(0.1)

    def _victim(self) -> subprocess.Popen[bytes]:
        """A running worker, neither frozen nor stopping (each fault has one cause)."""
        return self._rng.choice([p for p in self._fleet.running() if p.pid not in self._spared])

    def kill(self) -> None:
        victim = self._victim()
        victim.kill()
        self.faults.append(Fault("kill", time.time(), victim.pid))
        victim.wait()
        self._fleet.replace(victim)

    def freeze(self) -> None:
        victim = self._victim()
        victim.send_signal(signal.SIGSTOP)
        self._spared.add(victim.pid)
        self.faults.append(Fault("freeze", time.time(), victim.pid))
        threading.Timer(TTL_S + 2.0, self._thaw, args=(victim,)).start()

    def _thaw(self, victim: subprocess.Popen[bytes]) -> None:
        victim.send_signal(signal.SIGCONT)
        self._spared.discard(victim.pid)

    def term(self) -> None:
        victim = self._victim()
        victim.terminate()
        self._spared.add(victim.pid)
        self.faults.append(Fault("term", time.time(), victim.pid))
        threading.Thread(target=self._replace_after_exit, args=(victim,), daemon=True).start()

    def _replace_after_exit(self, victim: subprocess.Popen[bytes]) -> None:
        victim.wait()
        self._fleet.replace(victim)

    def redis(self) -> None:
        """Kill a worker, then restart Redis before its heartbeat key has expired: the
        recovery bound must hold next to an outage too."""
        self.kill()
        time.sleep(self._rng.uniform(0.5, 3.0))
        with self._producer.paused:
            self.faults.append(Fault("redis", time.time()))
            self._server.restart(kill=True)


def account(client: redis.Redis, pushed: list[tuple[str, str]], verdict: Verdict) -> None:
    """Each pushed task: completed (SUCCESS), dead-lettered (with its reason), or lost."""
    entries = [dead_letter.decode(raw) for raw in client.lrange(keys.dead_letters("default"),
                                                                 0, -1)]
    reasons = {e.task_id: e.reason for e in entries}
    verdict.innocent_quarantines = [e.task_id or "" for e in entries if e.reason == "poison"]
    dlq: Counter[str] = Counter()
    with client.pipeline(transaction=False) as pipe:
        for task_id, _ in pushed:
            pipe.get(keys.result(task_id))
        stored = pipe.execute()
    for (task_id, kind), raw in zip(pushed, stored, strict=True):
        if raw is not None and results.decode(raw).status == "SUCCESS":
            verdict.completed += 1
        elif task_id in reasons:
            dlq[reasons[task_id]] += 1
            if kind != "failing" or reasons[task_id] != "exception":
                verdict.problems.append(f"{kind} task {task_id} dead-lettered: "
                                        f"{reasons[task_id]}")
        else:
            verdict.lost.append(task_id)
    verdict.dead_lettered = dict(dlq)


def accounted(client: redis.Redis, pushed: list[tuple[str, str]]) -> bool:
    verdict = Verdict()
    try:
        account(client, pushed, verdict)
    except redis.RedisError:
        return False
    return not verdict.lost


def judge(plan: Plan, faults: list[Fault], pushed: list[tuple[str, str]],
          client: redis.Redis, ledger: Path) -> Verdict:
    verdict = Verdict(tasks=len(pushed), faults=dict(Counter(f.kind for f in faults)))
    account(client, pushed, verdict)
    records = read_ledger(ledger)
    check_reruns(records, faults, verdict)
    check_idempotent(records, {t for t, kind in pushed if kind == "idempotent"}, faults,
                     verdict)
    verdict.recovery_s, verdict.compound_recovery_s = recovery_latencies(records, faults)
    for name, bad in (("lost", verdict.lost), ("unexplained re-run", verdict.unexplained_reruns),
                      ("duplicate idempotent completion", verdict.duplicate_idempotent),
                      ("innocent quarantine", verdict.innocent_quarantines)):
        verdict.problems += [f"{name}: {task_id}" for task_id in bad]
    return verdict


def run(plan: Plan, workdir: Path) -> Verdict:
    """One chaos run; the workers' logs and the ledger stay in ``workdir``."""
    rng = random.Random(plan.seed)
    ledger = workdir / "ledger.jsonl"
    ledger.touch()
    with EmbeddedServer(appendonly=True) as server:
        chaos_tasks.app.configure(redis_url=server.url)
        fleet = Fleet(server.url, ledger, workdir, plan.concurrency)
        try:
            for _ in range(3):
                fleet.start()
            producer = Producer(plan, rng)
            chaos = Chaos(plan, fleet, server, producer, rng)
            started = time.monotonic()
            producer.start()
            chaos.run(started)
            producer.join()
            client = redis.Redis.from_url(server.url)
            deadline = time.monotonic() + plan.settle_s
            while not accounted(client, producer.pushed) and time.monotonic() < deadline:
                time.sleep(0.5)
            (workdir / "faults.json").write_text(json.dumps([vars(f) for f in chaos.faults]))
            return judge(plan, chaos.faults, producer.pushed, client, ledger)
        finally:
            fleet.stop_all()
            chaos_tasks.app.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=Plan.tasks)
    parser.add_argument("--duration", type=float, default=Plan.duration)
    parser.add_argument("--seed", type=int, default=Plan.seed)
    parser.add_argument("--keep", type=Path, help="keep the ledger and worker logs here")
    args = parser.parse_args()
    plan = Plan(tasks=args.tasks, duration=args.duration, seed=args.seed)
    if args.keep:
        args.keep.mkdir(parents=True, exist_ok=True)
        verdict = run(plan, args.keep)
    else:
        with tempfile.TemporaryDirectory(prefix="relier-chaos-") as tmp:
            verdict = run(plan, Path(tmp))
    print(verdict.summary())
    for problem in verdict.problems:
        print("PROBLEM", problem)
    sys.exit(1 if verdict.problems else 0)


if __name__ == "__main__":
    main()
