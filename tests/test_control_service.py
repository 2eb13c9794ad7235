"""The remote-control service and the revoked-id mirror, in-process, against the session's
real Redis (no subprocess): replies land where kombu's client waits, requests for other
workers or past their expiry are ignored, a failing or malformed request is contained."""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import anyio
import pytest
import redis

from relier import App
from relier.observability.recorder import TaskRecorder
from relier.protocol import pidbox
from relier.runtime.capacity import Capacity
from relier.runtime.control import ControlService
from relier.runtime.control_commands import WorkerFacts
from relier.runtime.revoked import RevokedIds, Terminations
from relier.store import control as control_store
from relier.store import keys
from relier.store.broker import Broker

HOST = "relier@test-worker"
REPLY_BINDINGS = "_kombu.binding.reply.celery.pidbox"


@pytest.fixture
async def service(redis_url: str) -> AsyncIterator[ControlService]:
    app = App(redis_url=redis_url)
    broker = Broker(app.async_client())
    facts = WorkerFacts(app=app, broker=broker, hostname=HOST, queues=["q1"],
                        capacity=Capacity(5), recorder=TaskRecorder("test-worker"),
                        revoked=RevokedIds(), terminations=Terminations())
    control = ControlService(app.async_client(), facts)
    yield control
    await control.aclose()
    await broker.aclose()
    app.close()


def request(method: str, *, oid: str | None = "oid1", expires: float | None = None,
            **fields: Any) -> bytes:
    body = {"method": method, "arguments": fields.pop("arguments", {}),
            "ticket": "t-1", **fields}
    if oid is not None:
        body["reply_to"] = {"exchange": "reply.celery.pidbox", "routing_key": oid}
    return json.dumps({
        "body": base64.b64encode(json.dumps(body).encode()).decode(),
        "content-type": "application/json",
        "headers": {"clock": 7, "expires": expires or time.time() + 60},
        "properties": {"body_encoding": "base64"},
    }).encode()


def bind(rclient: redis.Redis, oid: str = "oid1") -> str:
    queue = f"{oid}.reply.celery.pidbox"
    rclient.sadd(REPLY_BINDINGS, f"{oid}\x06\x16\x06\x16{queue}".encode())
    return queue


def replies(rclient: redis.Redis, queue: str) -> list[dict[str, Any]]:
    found = []
    while (raw := rclient.rpop(queue)) is not None:
        envelope = json.loads(raw)
        assert envelope["headers"]["ticket"] == "t-1"
        assert envelope["headers"]["clock"] > 7  # ahead of the client's clock
        found.append(json.loads(base64.b64decode(envelope["body"])))
    return found


async def test_ping_is_answered_on_the_bound_reply_queue(
    service: ControlService, rclient: redis.Redis
) -> None:
    queue = bind(rclient)
    await service.handle(request("ping"))
    assert replies(rclient, queue) == [{HOST: {"ok": "pong"}}]


async def test_no_binding_means_the_client_is_gone(
    service: ControlService, rclient: redis.Redis
) -> None:
    await service.handle(request("ping", oid="nobody"))
    assert rclient.keys("*nobody*") == []


@pytest.mark.parametrize("extra", [
    {"destination": ["celery@elsewhere"]},
    {"pattern": "celery@*"},
    {"expires": 1.0},
])
async def test_requests_for_others_or_expired_are_ignored(
    service: ControlService, rclient: redis.Redis, extra: dict[str, Any]
) -> None:
    queue = bind(rclient)
    await service.handle(request("ping", **extra))
    assert replies(rclient, queue) == []


async def test_a_failing_handler_becomes_an_error_reply(
    service: ControlService, rclient: redis.Redis
) -> None:
    queue = bind(rclient)
    # Unhashable ids: the handler raises; the reply says so and nothing else happens.
    await service.handle(request("query_task", arguments={"ids": [{"a": 1}]}))
    [reply] = replies(rclient, queue)
    assert reply[HOST]["error"].startswith("query_task failed: TypeError")


async def test_garbage_never_raises(service: ControlService) -> None:
    for raw in (b"", b"\xff", b"null", b'{"body": "e30=", "properties": {}}'):
        await service.handle(raw)


async def test_revoke_terminate_cancels_a_registered_async_run(
    service: ControlService, rclient: redis.Redis
) -> None:
    queue = bind(rclient)
    facts = service.facts
    outcome: dict[str, bool] = {}

    async def run() -> None:
        with facts.terminations.running("task-1", is_async=True) as registered:
            await anyio.sleep(30)
        outcome["revoked"] = registered.revoked

    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            tg.start_soon(run)
            await anyio.sleep(0.05)
            await service.handle(request(
                "revoke", arguments={"task_id": "task-1", "terminate": True}))
    assert outcome == {"revoked": True}
    assert replies(rclient, queue) == [{HOST: {"ok": "terminate: task-1"}}]
    assert "task-1" in facts.revoked
    assert rclient.zscore(keys.REVOKED, "task-1") is not None
    # Not running here: REVOKED stored for it (it had no state yet).
    assert rclient.get(keys.result("task-1")) is not None


async def test_revoke_without_ids_is_an_error(
    service: ControlService, rclient: redis.Redis
) -> None:
    queue = bind(rclient)
    await service.handle(request("revoke", arguments={"task_id": 5}))
    assert replies(rclient, queue) == [{HOST: {"error": "revoke: no task_id given"}}]


async def test_the_mirror_reads_what_others_revoked(redis_url: str,
                                                    rclient: redis.Redis) -> None:
    mirror = RevokedIds()
    client = App(redis_url=redis_url).async_client()
    first, second = str(uuid.uuid4()), str(uuid.uuid4())
    control_store.revoke_sync(rclient, control_store.Revocation([first], 60, 60))
    await mirror.refresh(client)
    assert first in mirror and second not in mirror
    control_store.revoke_sync(rclient, control_store.Revocation([second], 60, 60))
    await mirror.refresh(client)
    assert second in mirror and len(mirror) == 2
    await client.aclose()


def test_a_broadcast_reaches_subscribers(rclient: redis.Redis, redis_url: str) -> None:
    db = int(redis_url.rsplit("/", 1)[1])
    with rclient.pubsub() as listener:
        listener.subscribe(keys.pidbox_channel(db))
        listener.get_message(timeout=5)  # the subscribe confirmation
        envelope = pidbox.request("revoke", {"task_id": ["x"]}, time.time() + 60, 1)
        assert control_store.broadcast_sync(rclient, envelope) == 1
        message = listener.get_message(timeout=5)
    assert message is not None
    parsed = pidbox.parse_request(message["data"])
    assert (parsed.method, parsed.arguments, parsed.reply_to) == (
        "revoke", {"task_id": ["x"]}, None)


async def test_mingle_hello_gets_our_revoked_ids(
    service: ControlService, rclient: redis.Redis
) -> None:
    queue = bind(rclient)
    service.facts.revoked.add(["old", "new"])
    await service.handle(request("hello", arguments={"from_node": "celery@x",
                                                     "revoked": []}))
    [reply] = replies(rclient, queue)
    assert reply[HOST]["revoked"] == ["old", "new"]


async def test_enable_events_when_they_are_off_is_refused_once_in_the_log(
    service: ControlService, rclient: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    queue = bind(rclient)
    for _ in range(3):
        await service.handle(request("enable_events"))
    assert [r[HOST] for r in replies(rclient, queue)] == [
        {"error": "relier cannot switch task events on at run time: start the worker "
                  "with --events"}] * 3
    assert sum("enable_events asked for" in r.message for r in caplog.records) == 1
