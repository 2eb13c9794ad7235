"""Prometheus metrics scraped from a real worker's /metrics after a mix of outcomes."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
import urllib.request

import pytest
import redis
from prometheus_client.parser import text_string_to_metric_families

from relier import AdmissionRejectedError, TaskFailed
from relier.embedded import EmbeddedServer, free_port
from tests.conftest import FAST, ROOT, StartWorker
from tests.polling import poll
from tests.taskapps import observe

APP = "tests.taskapps.observe:app"
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]

pytestmark = pytest.mark.usefixtures("observe_app")


def scrape(port: int) -> Samples:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as reply:
        text = reply.read().decode()
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def test_counters_move_by_the_right_amount(
    start_worker: StartWorker, rclient: redis.Redis
) -> None:
    victim = start_worker(APP, env=FAST, queues="fragile")
    fragile = observe.hold.options(queue="fragile").push("fragile", 60.0, 0.5)
    poll(lambda: rclient.llen("test:started:fragile"), 15, "the fragile task to start")

    port = free_port()
    start_worker(APP, "--metrics-port", str(port), env=FAST, queues="default,re-queue")
    before = scrape(port)
    assert value(before, "relier_redis_up") == 1

    oks = [observe.ok.push(i) for i in range(3)]
    booms = [observe.boom.push("no") for _ in range(2)]
    hung = observe.hang.push(10.0)
    observe.limited.push_many([((1,), {}), ((2,), {})])
    with pytest.raises(AdmissionRejectedError):
        observe.limited.push(3)
    first = observe.once.push("order-1")
    assert first.result(timeout=10) == "order-1"
    assert observe.once.push("order-1").id == first.id  # answered from the record
    victim.process.kill()  # its task is resurrected by the worker we scrape

    assert [h.result(timeout=10) for h in oks] == [0, 1, 2]
    for h in booms:
        with pytest.raises(TaskFailed):
            h.result(timeout=10)
    with pytest.raises(TaskFailed):
        hung.result(timeout=10)
    assert fragile.result(timeout=30)  # ran again, on the survivor

    def sampled() -> Samples | None:
        # Gauges and the runtime's own totals are sampled every half second.
        found = scrape(port)
        caught_up = (value(found, "relier_worker_tasks_in_flight") == 0
                     and value(found, "relier_hard_timeouts_total") >= 1)
        return found if caught_up else None

    after = poll(sampled, 10, "the sampler to catch up")

    def moved(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    tasks = "relier_tasks_total"
    assert moved(tasks, task="observe.ok", queue="default", outcome="success") == 3
    assert moved(tasks, task="observe.boom", queue="default", outcome="failure") == 2
    assert moved(tasks, task="observe.hang", queue="default", outcome="timeout") == 1
    assert moved("relier_soft_timeouts_total") == 1
    assert moved("relier_hard_timeouts_total") == 1
    assert moved(tasks, task="observe.once", queue="default", outcome="success") == 1
    assert moved(tasks, task="observe.hold", queue="fragile", outcome="success") == 1
    assert moved("relier_task_duration_seconds_count", task="observe.ok", queue="default") == 3
    assert moved("relier_resurrections_total", queue="fragile", action="requeue") == 1
    assert moved("relier_resurrection_latency_seconds_count") == 1
    assert moved("relier_admission_rejections_total", queue="limited") == 1
    assert moved("relier_idempotent_hits_total", queue="default") == 1
    assert moved("relier_queue_fetched_total", queue="default") == 7
    assert value(after, "relier_queue_depth", queue="limited") == 2
    assert value(after, "relier_dlq_size", queue="default", reason="exception") == 2
    assert value(after, "relier_dlq_size", queue="default", reason="hard_timeout") == 1
    assert value(after, "relier_queue_in_flight", queue="default") == 0
    assert value(after, "relier_workers", state="dead") == 1
    assert value(after, "relier_workers", state="alive") == 1
    assert 0 <= value(after, "relier_event_loop_lag_seconds") < 5

    # The Grafana dashboard only plots series a worker really exposes.
    dashboard = json.loads((ROOT / "docs" / "grafana-dashboard.json").read_text())
    plotted = {name for panel in dashboard["panels"] for target in panel["targets"]
               for name in re.findall(r"relier_[a-z_]+", target["expr"])}
    assert plotted and plotted <= {name for name, _ in after}


def test_a_scrape_answers_while_redis_is_down(start_worker: StartWorker) -> None:
    with EmbeddedServer() as server:
        port = free_port()
        start_worker(APP, "--metrics-port", str(port), url=server.url)
        assert value(scrape(port), "relier_redis_up") == 1
        server.stop(kill=True)
        down = scrape(port)
        assert value(down, "relier_redis_up") == 0
        assert ("relier_event_loop_lag_seconds", frozenset()) in down  # the rest still served


def test_a_busy_metrics_port_is_one_clear_error(redis_url: str) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run([sys.executable, "-m", "relier", "worker", "-A", APP,
                               "--metrics-port", str(port), "--redis-url", redis_url],
                              capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert done.returncode == 2
    assert f"cannot serve metrics on 127.0.0.1:{port}" in done.stderr
    assert "Traceback" not in done.stderr
