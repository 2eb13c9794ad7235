"""Relier on Sentinel: the URL, clients that reach the master, and a real failover."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import redis

from relier.errors import ConfigurationError
from relier.settings import Settings
from relier.store.connections import parse_sentinel_url
from tests.conftest import ROOT, StartWorker
from tests.polling import poll
from tests.taskapps import basic, failover
from tests.topologies import SentinelSetup


def test_a_sentinel_url_names_sentinels_service_database_and_passwords() -> None:
    target = parse_sentinel_url(
        "redis+sentinel://app:s3cret@10.0.0.1:26379,10.0.0.2/orders/3?sentinel_password=x")
    assert target.sentinels == (("10.0.0.1", 26379), ("10.0.0.2", 26379))
    assert (target.service, target.db) == ("orders", 3)
    assert (target.username, target.password, target.sentinel_password) == ("app", "s3cret", "x")


@pytest.mark.parametrize(("url", "says"), [
    ("redis+sentinel://h:26379", "no service name"),
    ("redis+sentinel://h:26379/svc/x", "/SERVICE or /SERVICE/DB"),
    ("redis+sentinel://h:99999/svc", "invalid port"),
    ("redis+sentinel://h:1/svc?master=x", "unknown option 'master'"),
])
def test_a_bad_sentinel_url_is_one_line_with_an_example(url: str, says: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        Settings.load({"redis_url": url})
    assert says in str(caught.value)
    assert "expected like redis+sentinel://" in str(caught.value)
    assert "\n" not in str(caught.value)


async def test_push_and_results_go_through_the_master(
        sentinel_setup: SentinelSetup, start_worker: StartWorker) -> None:
    url = sentinel_setup.url_for(5)
    basic.app.configure(redis_url=url)
    try:
        start_worker("tests.taskapps.basic:app", url=url)
        handle = basic.add.push(2, 3)
        assert handle.result(timeout=30) == 5
        assert await (await basic.add.apush(4, 5)).aresult(timeout=30) == 9
        master = redis.Redis(port=sentinel_setup.master_port(), db=5)
        try:
            assert master.exists("celery-task-meta-" + handle.id) == 1
            assert b"default" in master.smembers("relier:queues")  # the worker wrote here
        finally:
            master.close()
    finally:
        await basic.app.aclose()
        basic.app.close()


class Producer(threading.Thread):
    """Pushes ``failover.note(n)`` every few milliseconds, noting when each push returned
    (accepted) or raised (refused: the caller knows, so it is not lost)."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.accepted: list[tuple[str, float]] = []
        self.refused = 0
        self.refusals: set[str] = set()
        self.done = threading.Event()

    def run(self) -> None:
        n = 0
        while not self.done.wait(0.005):
            n += 1
            try:
                self.accepted.append((failover.note.push(n).id, time.monotonic()))
            except Exception as exc:  # any refusal counts; the next push retries
                self.refused += 1
                self.refusals.add(type(exc).__name__)

    def accepted_after(self, moment: float) -> list[str]:
        return [task_id for task_id, at in self.accepted if at > moment]


def _runs(log: Path) -> dict[str, int]:
    counts: dict[str, int] = {}
    for line in log.read_text().splitlines() if log.exists() else []:
        task_id = line.split()[0]
        counts[task_id] = counts.get(task_id, 0) + 1
    return counts


#: What the test allows from a kill to the first push accepted by the new master, and to
#: a task pushed then being run: detection (down-after-milliseconds, 1 s here) + election
#: + promotion are about 2-3 s on this machine; the rest is margin for a loaded host.
FOLLOW_BOUND_S = 30.0
#: Replication is asynchronous: a push acknowledged by the old master less than this long
#: before its death may not have reached the replica.
REPLICATION_WINDOW_S = 1.0


def test_workers_and_producers_follow_a_failover(
        fresh_sentinel_setup: SentinelSetup, start_worker: StartWorker, tmp_path: Path) -> None:
    setup, log = fresh_sentinel_setup, tmp_path / "runs.log"
    failover.app.configure(redis_url=setup.url)
    env = {"RELIER_TEST_RUN_LOG": str(log), "RELIER_HEARTBEAT_INTERVAL": "0.5",
           "RELIER_HEARTBEAT_TTL": "10"}
    producer = Producer()
    try:
        start_worker("tests.taskapps.failover:app", url=setup.url, env=env)
        before = [failover.note.push(i) for i in range(20)]
        assert [h.result(timeout=30) for h in before] == list(range(20))
        producer.start()
        poll(lambda: len(producer.accepted) >= 50, 30, "pushes under way")
        old, killed_at = setup.kill_master()
        setup.wait_failover(old)
        resumed = poll(lambda: producer.accepted_after(killed_at), FOLLOW_BOUND_S,
                       "a push accepted by the new master")[0]
        poll(lambda: resumed in _runs(log), FOLLOW_BOUND_S, "the worker to run it")
        follow_s = time.monotonic() - killed_at
        producer.done.set()
        producer.join(10)
        lost = _wait_for_all_or_lost(producer, log)
        runs = _runs(log)
        assert all(runs[h.id] == 1 for h in before)  # acked before the failover: run once
        ran = [task_id for task_id in runs if task_id not in {h.id for h in before}]
        poll(lambda: all(failover.app.result(t).state == "SUCCESS" for t in ran), 30,
             "every run acked with its result on the new master")
        late = set(producer.accepted_after(killed_at - REPLICATION_WINDOW_S))
        assert set(lost) <= late, "lost a push acknowledged well before the master died"
        assert producer.refusals <= {"BrokerUnavailable"}  # the caller is told, clearly
        print(f"failover: pushes and the worker resumed {follow_s:.2f}s after the kill; "
              f"{len(producer.accepted)} pushes accepted, {producer.refused} refused, "
              f"{len(lost)} lost; {sum(c - 1 for c in runs.values())} run twice")
    finally:
        producer.done.set()
        failover.app.close()


def _wait_for_all_or_lost(producer: Producer, log: Path) -> list[str]:
    """Wait until every accepted push has run; what has not after a while is lost."""
    wanted = {task_id for task_id, _ in producer.accepted}
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not wanted <= set(_runs(log)):
        time.sleep(0.1)
    return sorted(wanted - set(_runs(log)))


def test_doctor_says_what_the_sentinels_see(sentinel_setup: SentinelSetup) -> None:
    url = sentinel_setup.url_for(6)
    found = subprocess.run([sys.executable, "-m", "relier", "doctor", "--json",
                            "--redis-url", url], capture_output=True, text=True, timeout=60,
                           cwd=ROOT)
    assert found.returncode == 0, found.stdout + found.stderr  # a warning, not a problem
    checks = {c["name"]: c for c in json.loads(found.stdout)["checks"]}
    sentinel = checks["sentinel"]
    assert sentinel["status"] == "ok"
    assert f"master 127.0.0.1:{sentinel_setup.master_port()}" in sentinel["detail"]
    assert f"1 replica(s) (127.0.0.1:{sentinel_setup.replica.port})" in sentinel["detail"]
    assert "3 sentinel(s), quorum 2" in sentinel["detail"]
    assert "service mymaster" in sentinel["detail"]
    replication = checks["replication"]
    assert replication["status"] == "warn"
    assert "asynchronous" in replication["detail"] and "1000 ms" in replication["detail"]


def test_doctor_names_an_unknown_service_in_one_line(sentinel_setup: SentinelSetup) -> None:
    url = sentinel_setup.url.replace("/mymaster/", "/nosuch/")
    found = subprocess.run([sys.executable, "-m", "relier", "doctor", "--redis-url", url],
                           capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert found.returncode != 0
    assert "nosuch" in found.stderr and "Traceback" not in found.stderr
    assert len(found.stderr.strip().splitlines()) == 1, found.stderr
