"""OpenTelemetry traces across the queue (relier/observability/tracing.py).

Worker subprocesses write their spans to a file (tests/span_files.py); this process
keeps its own in the SDK's in-memory exporter. Every trace is asserted by its
parent/child relations and trace ids, across:

* a FastAPI request → ``apush`` → a Relier worker, with a retry and a resurrection after
  ``kill -9``;
* a Celery producer with opentelemetry-instrumentation-celery → a Relier worker, and a
  Relier producer → a real ``celery worker`` with that instrumentation;
* in-process runs (the relier.testing harness): attributes, events, hostile headers,
  and tracing off.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest
import redis
from fastapi import FastAPI
from opentelemetry.instrumentation.celery import CeleryInstrumentor
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from relier import App
from relier.handle import TaskHandle
from relier.observability import tracing
from relier.protocol import message as wire
from relier.testing import AsyncTestWorker
from tests.conftest import FAST, StartWorker, WorkerProcess, pointed_at
from tests.polling import poll
from tests.span_files import SPAN_FILE_ENV, as_dict, read_spans
from tests.taskapps import traced
from tests.taskapps.interop_celery import URL_ENV, make_app
from tests.test_celery_interop import CELERY_READY_TIMEOUT, close_celery

ROOT = Path(__file__).resolve().parent.parent
TRACED_APP = "tests.taskapps.traced:app"
WAIT_S = 60.0

#: This process's spans, in memory. Not the global provider: that one can be set only
#: once, and would trace every later test of the session.
EXPORTER = InMemorySpanExporter()
PROVIDER = TracerProvider()
PROVIDER.add_span_processor(SimpleSpanProcessor(EXPORTER))


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    """Relier's spans (and those of the instrumentations given PROVIDER) in memory."""
    EXPORTER.clear()
    tracing.use_tracer_provider(PROVIDER)
    yield EXPORTER
    tracing.use_tracer_provider(None)
    EXPORTER.clear()


def local(exporter: InMemorySpanExporter) -> list[dict[str, Any]]:
    finished: tuple[ReadableSpan, ...] = exporter.get_finished_spans()
    return [as_dict(span) for span in finished]


def one(found: list[dict[str, Any]], name: str, **attributes: Any) -> dict[str, Any]:
    matches = [s for s in found if s["name"] == name and
               all(s["attributes"].get(k) == v for k, v in attributes.items())]
    assert len(matches) == 1, f"{len(matches)} spans named {name} {attributes} in {found}"
    return matches[0]


def spans_in(path: Path, count: int, what: str) -> list[dict[str, Any]]:
    return poll(lambda: (found := read_spans(path)) and len(found) >= count and found,
                WAIT_S, what)


def span_named(path: Path, name: str) -> dict[str, Any]:
    """The one span called ``name`` in a worker's file, once it is there."""
    poll(lambda: any(s["name"] == name for s in read_spans(path)), WAIT_S, name)
    return one(read_spans(path), name)


@pytest.fixture
async def traced_app(redis_url: str) -> AsyncIterator[App]:
    async with pointed_at(redis_url, traced.app):
        yield traced.app


# == FastAPI → apush → worker, with a retry and a resurrection ===========================


def checkout_api() -> FastAPI:
    api = FastAPI()

    @api.post("/checkout/{marker}")
    async def checkout(marker: str) -> dict[str, str]:
        handle = await traced.checkout.apush(marker)
        return {"task_id": handle.id}

    FastAPIInstrumentor.instrument_app(api, tracer_provider=PROVIDER)
    return api


async def test_one_trace_from_request_through_retry_and_resurrection(
    spans: InMemorySpanExporter, traced_app: App, start_worker: StartWorker,
    rclient: redis.Redis, tmp_path: Path,
) -> None:
    span_file = tmp_path / "worker-spans.jsonl"
    env = {**FAST, SPAN_FILE_ENV: str(span_file)}
    first = start_worker(TRACED_APP, env=env)
    transport = httpx.ASGITransport(app=checkout_api())
    async with httpx.AsyncClient(transport=transport, base_url="http://shop") as client:
        response = await client.post("/checkout/m1")
    task_id = response.json()["task_id"]
    # Attempt 1 failed and was retried; attempt 2 is running: kill its worker.
    poll(lambda: rclient.llen("test:started:m1") >= 2, WAIT_S, "attempt 2 to start")
    first.kill()
    start_worker(TRACED_APP, env=env)
    assert await TaskHandle(traced.app, task_id).aresult(timeout=WAIT_S) == "paid"
    ours = local(spans)
    server = one([s for s in ours if s["kind"] == "SERVER"], "POST /checkout/{marker}")
    push = one(ours, "apply_async/traced.checkout")
    assert (push["kind"], push["parent_id"]) == ("PRODUCER", server["span_id"])
    assert push["attributes"]["messaging.message.id"] == task_id
    span_named(span_file, "charge card")
    theirs = spans_in(span_file, 3, "the worker spans")
    retried = one(theirs, "run/traced.checkout", **{"relier.attempt": 1})
    resurrected = one(theirs, "run/traced.checkout", **{"relier.resurrections": 1})
    charge = one(theirs, "charge card")
    for run in (retried, resurrected):
        assert (run["trace_id"], run["parent_id"], run["kind"]) == \
            (server["trace_id"], push["span_id"], "CONSUMER")
    assert retried["attributes"]["relier.outcome"] == "retry"
    assert "relier.retry_scheduled" in retried["events"]
    assert resurrected["attributes"]["relier.outcome"] == "success"
    assert resurrected["attributes"]["relier.attempt"] == 2
    assert "relier.resurrected" in resurrected["events"]
    assert resurrected["attributes"]["relier.worker"] != retried["attributes"]["relier.worker"]
    assert (charge["trace_id"], charge["parent_id"]) == (server["trace_id"],
                                                          resurrected["span_id"])


# == Celery ⇄ Relier =====================================================================


@pytest.fixture
def celery_tracing(spans: InMemorySpanExporter) -> Iterator[None]:
    instrumentor = CeleryInstrumentor()
    instrumentor.instrument(tracer_provider=PROVIDER)
    yield
    instrumentor.uninstrument()


def test_a_celery_producers_trace_continues_in_a_relier_worker(
    spans: InMemorySpanExporter, celery_tracing: None, redis_url: str,
    start_worker: StartWorker, tmp_path: Path,
) -> None:
    span_file = tmp_path / "worker-spans.jsonl"
    start_worker(TRACED_APP, env={SPAN_FILE_ENV: str(span_file)})
    celery = make_app(redis_url, main="traced_client")
    try:
        with PROVIDER.get_tracer("shop").start_as_current_span("nightly report") as root:
            result = celery.send_task("traced.add", args=(2, 3), queue="default")
        assert result.get(timeout=WAIT_S) == 5
    finally:
        close_celery(celery)
    publish = one(local(spans), "apply_async/traced.add")
    assert publish["parent_id"] == f"{root.get_span_context().span_id:016x}"
    run = span_named(span_file, "run/traced.add")
    assert (run["trace_id"], run["parent_id"]) == (publish["trace_id"], publish["span_id"])
    assert run["attributes"]["messaging.message.id"] == result.id


def start_traced_celery_worker(redis_url: str, queue: str, span_file: Path) -> WorkerProcess:
    args = [sys.executable, "-m", "celery", "-A", "tests.taskapps.traced_celery", "worker",
            "-P", "solo", "-Q", queue, "-n", f"traced-{uuid.uuid4().hex[:8]}@%h",
            "--without-mingle", "--without-gossip", "--without-heartbeat", "-l", "info"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1", URL_ENV: redis_url,
           SPAN_FILE_ENV: str(span_file)}
    worker = WorkerProcess(args, env)
    worker.wait_for_line(" ready.", timeout=CELERY_READY_TIMEOUT)
    return worker


async def test_a_relier_push_trace_continues_in_a_celery_worker(
    spans: InMemorySpanExporter, redis_url: str, tmp_path: Path,
) -> None:
    span_file = tmp_path / "celery-spans.jsonl"
    queue = f"celery-{uuid.uuid4().hex[:8]}"
    app = App()
    celery_add = app.task(name="traced.celery_add", queue=queue)(_add)
    worker = start_traced_celery_worker(redis_url, queue, span_file)
    try:
        async with pointed_at(redis_url, app):
            handle = await celery_add.apush(4, 5)
            assert await handle.aresult(timeout=WAIT_S) == 9
        run = span_named(span_file, "run/traced.celery_add")
    finally:
        worker.kill()
    push = one(local(spans), "apply_async/traced.celery_add")
    assert (run["trace_id"], run["parent_id"]) == (push["trace_id"], push["span_id"])


async def _add(x: int, y: int) -> int:
    return x + y


# == In process: attributes, events, hostile headers, off ==============================


async def test_run_span_attributes_and_events_in_process(
    spans: InMemorySpanExporter, redis_url: str,
) -> None:
    app = App()
    slow = app.task(name="traced.slow", soft_timeout=0.1, hard_timeout=5)(_slow)
    boom = app.task(name="traced.boom", queue="default")(_boom)
    async with pointed_at(redis_url, app):
        worker = AsyncTestWorker(app, queues=["default"])
        await worker.start()
        slow_handle, boom_handle = await slow.apush(0.5), await boom.apush()
        await worker.drain()
        await worker.stop()
    found = local(spans)
    slow_run = one(found, "run/traced.slow")
    assert slow_run["attributes"]["relier.outcome"] == "success"
    assert "relier.soft_timeout" in slow_run["events"]
    assert slow_run["attributes"]["relier.worker"] == worker.worker.id
    assert slow_run["attributes"]["messaging.destination.name"] == "default"
    assert slow_run["parent_id"] == one(found, "apply_async/traced.slow")["span_id"]
    boom_run = one(found, "run/traced.boom")
    assert (boom_run["status"], boom_run["attributes"]["relier.outcome"]) == ("ERROR", "failure")
    assert "relier.dead_lettered" in boom_run["events"]
    assert boom_run["attributes"]["messaging.message.id"] == boom_handle.id
    assert slow_handle.id != boom_handle.id


async def _slow(seconds: float) -> str:
    await asyncio.sleep(seconds)
    return "done"


async def _boom() -> None:
    raise ValueError("boom")


@pytest.mark.parametrize("traceparent", [12345, "00-garbage", ["00-x"], {"a": 1}])
async def test_a_hostile_trace_header_only_loses_the_parent(
    spans: InMemorySpanExporter, redis_url: str, rclient: redis.Redis, traceparent: Any,
) -> None:
    app = App()
    app.task(name="traced.add2")(_add)
    message = wire.build("traced.add2", [1, 2], {}, queue="default",
                         extra_headers={"traceparent": traceparent})
    rclient.lpush("default", wire.encode(message))
    async with pointed_at(redis_url, app):
        worker = AsyncTestWorker(app, queues=["default"])
        await worker.start()
        await worker.drain()
        await worker.stop()
        meta = worker.result(message.id)
    assert meta is not None and meta.result == 3
    run = one(local(spans), "run/traced.add2")
    assert run["parent_id"] is None


async def test_tracing_off_adds_no_header_and_no_span(
    spans: InMemorySpanExporter, redis_url: str, rclient: redis.Redis,
) -> None:
    on, off = App(), App(tracing=False)
    on_add = on.task(name="traced.on")(_add)
    off_add = off.task(name="traced.off")(_add)
    async with pointed_at(redis_url, on, off):
        await on_add.apush(1, 1)
        await off_add.apush(1, 1)
    headers = [msgspec.json.decode(raw)["headers"] for raw in rclient.lrange("default", 0, -1)]
    by_task = {h["task"]: h for h in headers}
    push = one(local(spans), "apply_async/traced.on")
    assert by_task["traced.on"]["traceparent"].startswith(
        f"00-{push['trace_id']}-{push['span_id']}-")
    assert "traceparent" not in by_task["traced.off"]
    assert [s["name"] for s in local(spans)] == ["apply_async/traced.on"]


WITHOUT_OTEL = """
import sys
sys.modules["opentelemetry"] = None  # as if relier[otel] were not installed
import pytest
code = pytest.main(["-q", "-p", "no:cacheprovider", "-p", "relier.testing",
                    "examples/test_tasks.py"])
from relier.observability import tracing
assert not tracing.AVAILABLE and not tracing.enabled(True)
with tracing.push_span("t", "q", tracing.enabled(True)) as push:
    assert dict(push.headers) == {}
tracing.event("relier.soft_timeout")
sys.exit(code)
"""


def test_without_the_extra_hooks_are_no_ops_and_tasks_run() -> None:
    done = subprocess.run([sys.executable, "-c", WITHOUT_OTEL], cwd=ROOT,
                          capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "4 passed" in done.stdout


async def test_without_a_configured_provider_a_push_writes_no_context(
    redis_url: str, rclient: redis.Redis,
) -> None:
    from opentelemetry import trace

    if not isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider):
        pytest.skip("some test of this session set a global tracer provider")
    app = App()
    add = app.task(name="traced.bare")(_add)
    async with pointed_at(redis_url, app):
        with PROVIDER.get_tracer("shop").start_as_current_span("request"):
            await add.apush(1, 1)  # Relier's provider: the global one, never set
    [raw] = rclient.lrange("default", 0, -1)
    assert "traceparent" not in msgspec.json.decode(raw)["headers"]
