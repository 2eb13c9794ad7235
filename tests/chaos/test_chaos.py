"""The bounded chaos run (the long one: ``python -m benchmarks.chaos``).

3 workers at default heartbeat settings under kill -9 every few seconds, one freeze past
the heartbeat TTL, one SIGTERM and one Redis restart (append-only, ``appendfsync
always``), with a producer pushing fast, slow, sync, idempotent and failing tasks. The
ledger the tasks write outside Relier must show: every task accounted for, nothing lost,
every re-run explained by a fault, no idempotent call run again after its recorded
success, no well-behaved task quarantined, and kill → running again within 12 s (p99).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.chaos import RECOVERY_P99_S, Plan, run

pytestmark = [pytest.mark.chaos, pytest.mark.timeout(300)]

#: About 60 s of faults, then the drain: within the CI budget on a loaded 2-core box.
BOUNDED = Plan(tasks=400, duration=55.0, kill_every=7.0, freeze_at=0.25, term_at=0.5,
               redis_at=0.65, settle_s=60.0)


def test_nothing_lost_and_every_rerun_explained_under_chaos(tmp_path: Path) -> None:
    verdict = run(BOUNDED, tmp_path)
    print(verdict.summary())
    assert verdict.problems == [], "\n".join(verdict.problems[:20])
    assert verdict.lost == []
    assert verdict.completed + sum(verdict.dead_lettered.values()) == verdict.tasks
    assert set(verdict.dead_lettered) <= {"exception"}
    assert verdict.faults["kill"] >= 3
    assert {"freeze", "term", "redis"} <= set(verdict.faults)
    assert verdict.reruns >= 1  # the faults did interrupt work
    assert verdict.recovery_s, "no kill interrupted a running task"
    assert verdict.percentile(0.99) <= RECOVERY_P99_S, verdict.summary()
