"""Canvas, in process: the follow-ups built from Celery's captured messages (pure), and the
settle scripts that send them, against the session's real Redis.

The settle tests drive a ``Delivery`` the way the executor does, so they show the hand-off
itself: the next step leaves with the settle or not at all, a zombie's settle sends
nothing, and a chord joined partly by Celery's own backend code (the real
``on_chord_part_return``) and partly by Relier calls back exactly once.
"""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest
import redis
import redis.asyncio as aioredis
from celery.app.task import Context

import relier
from relier.protocol import canvas, results
from relier.protocol import message as wire
from relier.protocol.canvas import CanvasUnsupported, FollowUps
from relier.protocol.message import TaskMessage
from relier.runtime.delivery import Delivery, Settler
from relier.store import keys
from relier.store.broker import Broker
from tests.taskapps.interop_celery import make_app
from tests.test_celery_interop import close_celery

VECTORS = Path(__file__).parent / "vectors"
WORKER = "w-canvas"
QUEUE = "celery"


def vector(name: str) -> bytes:
    return (VECTORS / name).read_bytes()


def body_of(raw: bytes) -> Any:
    return json.loads(base64.b64decode(json.loads(raw)["body"]))


def to_celery_queue(_sig: canvas.Signature) -> str:
    return QUEUE


def with_embed(raw: bytes, **embed: Any) -> TaskMessage:
    message = wire.decode(raw)
    message.embed = {**message.embed, **embed}
    return message


# == pure: what a finished step sends =======================================================


def test_chain_next_step_gets_the_result_first_and_the_rest_of_the_chain() -> None:
    message = wire.decode(vector("e_chain.json"))
    follow = canvas.after_success(message, canvas.read_canvas(message), 3, to_celery_queue)
    (step,) = follow.messages
    sent = wire.decode(step.raw)
    # chain[-1] runs next: add(3) with the parent's result prepended.
    assert (sent.task, sent.id, sent.args) == ("probe.add", message.embed["chain"][-1][
        "options"]["task_id"], [3, 3])
    assert sent.embed["chain"] == message.embed["chain"][:-1]
    assert sent.root_id == message.id and sent.parent_id == message.id
    assert (step.queue, step.priority) == (QUEUE, None)
    assert follow.results == () and follow.chord is None


def test_link_gets_the_result_and_link_error_the_task_id() -> None:
    message = wire.decode(vector("e_link_errback.json"))
    sigs = canvas.read_canvas(message)
    (callback,) = canvas.after_success(message, sigs, 3, to_celery_queue).messages
    assert wire.decode(callback.raw).args == [3, 10]
    failure = results.failure(message.id, ValueError("boom"))
    (errback,) = canvas.after_failure(message, sigs, failure, to_celery_queue).messages
    sent = wire.decode(errback.raw)
    assert (sent.task, sent.args, sent.kwargs) == ("probe.echo", [message.id],
                                                   {"errback": True})
    assert sent.parent_id == message.id


def test_failure_marks_every_remaining_chain_step_failed() -> None:
    message = wire.decode(vector("e_chain.json"))
    failure = results.failure(message.id, ValueError("boom"))
    follow = canvas.after_failure(message, canvas.read_canvas(message), failure,
                                  to_celery_queue)
    ids = [s["options"]["task_id"] for s in message.embed["chain"]]
    assert [task_id for task_id, _ in follow.results] == ids
    stored = results.decode(follow.results[0][1])
    assert stored.status == "FAILURE" and stored.task_id == ids[0]
    assert follow.messages == ()


def test_immutable_steps_ignore_the_parent_result() -> None:
    sig = canvas.Signature("probe.add", (1, 1), immutable=True)
    message = with_embed(vector("a_send_task_default.json"), chain=[sig.to_wire()])
    (step,) = canvas.after_success(message, canvas.read_canvas(message), 99,
                                   to_celery_queue).messages
    assert wire.decode(step.raw).args == [1, 1]


def test_an_empty_embed_reads_as_no_canvas() -> None:
    message = with_embed(vector("a_send_task_default.json"), callbacks=None, errbacks=[],
                         chain=None, chord=None)
    assert canvas.read_canvas(message).empty


@pytest.mark.parametrize(("embed", "named"), [
    ({"chain": [{"task": "t", "subtask_type": "chord", "kwargs": {}}]}, "nested 'chord'"),
    ({"callbacks": [{"task": "t", "options": {"exchange": "topic_x"}}]}, "named exchange"),
    ({"errbacks": [{"task": "t", "options": {"frobnicate": 1}}]}, "frobnicate"),
    ({"chord": {"task": "t", "options": {"serializer": "pickle"}}}, "pickle"),
    ({"chain": "not a list"}, "not a list"),
    # Falsy but not a list: refused too (read_canvas's fast path takes only None and []).
    ({"callbacks": ""}, "not a list"),
    ({"errbacks": {}}, "not a list"),
    ({"chain": 0}, "not a list"),
    ({"chain": [{"task": "t", "options": {"countdown": "soon"}}]}, "countdown='soon'"),
    ({"callbacks": [{"task": "t", "options": {"eta": "tomorrow"}}]}, "ISO-8601"),
])
def test_unsupported_canvas_parts_are_named(embed: dict[str, Any], named: str) -> None:
    message = with_embed(vector("a_send_task_default.json"), **embed)
    with pytest.raises(CanvasUnsupported, match=named) as caught:
        canvas.read_canvas(message)
    assert caught.value.reason == "canvas_unsupported"


# == the settle scripts, in process, on the real server ======================================


@asynccontextmanager
async def settling(redis_url: str) -> AsyncIterator[Settler]:
    """A settler sending to the test's database (a context manager, not a fixture: its
    task group must be entered and left in the test's own task)."""
    client = aioredis.Redis.from_url(redis_url)
    broker = Broker(client)
    settler = Settler(broker)
    async with anyio.create_task_group() as tg:
        tg.start_soon(settler.run)
        yield settler
        tg.cancel_scope.cancel()
    await client.aclose()


def taken(rclient: redis.Redis, settler: Settler, raw: bytes) -> Delivery:
    """A delivery of ``raw`` as the fetch script leaves it: in the processing list."""
    rclient.lpush(keys.processing(QUEUE, WORKER), raw)
    return Delivery(raw, QUEUE, WORKER, settler)


async def test_next_step_leaves_with_the_ack_and_a_zombie_sends_nothing(
    rclient: redis.Redis, redis_url: str
) -> None:
    async with settling(redis_url) as settler:
        raw = vector("e_chain.json")
        message = wire.decode(raw)
        follow = canvas.after_success(message, canvas.read_canvas(message), 3, to_celery_queue)
        delivery = taken(rclient, settler, raw)
        result = results.encode(results.success(message.id, 3))
        assert await delivery.ack(message, result, 60, follow_ups=follow)
        assert [body_of(m)[0] for m in rclient.lrange(QUEUE, 0, -1)] == [[3, 3]]
        # The same settle again (a zombie whose copy Phoenix took back, or a repeat after a
        # lost reply): its copy is no longer in the processing list, so nothing is sent.
        zombie = Delivery(raw, QUEUE, WORKER, settler)
        assert not await zombie.ack(message, result, 60, follow_ups=follow)
        assert rclient.llen(QUEUE) == 1


def header_part(index: int, gid: str, callback: dict[str, Any]) -> TaskMessage:
    message = wire.decode(vector("e_chord_header_message.json"))
    message.id = f"part-{index}"
    message.headers.update(id=message.id, group=gid, group_index=index)
    message.group, message.group_index = gid, index
    message.embed = {**message.embed, "chord": callback}
    return message


async def relier_part(
    settler: Settler, rclient: redis.Redis, message: TaskMessage, value: Any
) -> bool:
    raw = wire.encode(message)
    follow: FollowUps = canvas.after_success(message, canvas.read_canvas(message), value,
                                             to_celery_queue)
    result = results.encode(results.success(message.id, value))
    return await taken(rclient, settler, raw).ack(message, result, 60, follow_ups=follow)


def callback_of(raw: bytes) -> dict[str, Any]:
    """The chord callback signature a header message carries."""
    return body_of(raw)[2]["chord"]  # type: ignore[no-any-return]


async def test_chord_joined_by_relier_and_celery_calls_back_once(
    rclient: redis.Redis, redis_url: str
) -> None:
    async with settling(redis_url) as settler:
        celery = make_app(redis_url, main="canvas_join")
        try:
            callback = callback_of(vector("e_chord_header_message.json"))
            gid = callback["options"]["group_id"]
            celery.backend.set_chord_size(gid, 4)
            parts = [header_part(i, gid, callback) for i in range(4)]
            assert await relier_part(settler, rclient, parts[0], 0)
            # A header part run by a Celery worker: Celery's own backend code records it.
            request = Context(id="part-1", group=gid, group_index=1, chord=callback)
            celery.backend.on_chord_part_return(request, "SUCCESS", 2)
            assert await relier_part(settler, rclient, parts[3], 6)
            assert rclient.llen(QUEUE) == 0  # three of four: not yet
            assert await relier_part(settler, rclient, parts[2], 4)
            (sent,) = rclient.lrange(QUEUE, 0, -1)
            envelope = json.loads(sent)
            assert envelope["headers"]["id"] == callback["options"]["task_id"]
            assert envelope["headers"]["group"] == gid
            assert body_of(sent)[0] == [[0, 2, 4, 6]]  # in header order, Celery's included
            assert wire.decode(sent).task == "probe.tsum"
            # A late copy of a part (from Celery or Relier) calls back no second time.
            celery.backend.on_chord_part_return(request, "SUCCESS", 2)
            again = header_part(3, gid, callback)
            again.headers["relier_resurrections"] = 1  # another delivery of the same part
            assert await relier_part(settler, rclient, again, 6)
            assert rclient.llen(QUEUE) == 1
            assert rclient.get(keys.taskset(gid, ".c")) == b"done"
        finally:
            close_celery(celery)


async def test_chord_completed_by_celery_reads_relier_parts(
    rclient: redis.Redis, redis_url: str
) -> None:
    async with settling(redis_url) as settler:
        celery = make_app(redis_url, main="canvas_join2")
        try:
            callback = callback_of(vector("e_chord_header_message.json"))
            gid = callback["options"]["group_id"]
            celery.backend.set_chord_size(gid, 2)
            assert await relier_part(settler, rclient, header_part(0, gid, callback),
                                     {"a": [1, 2.5]})
            request = Context(id="part-1", group=gid, group_index=1, chord=callback)
            celery.backend.on_chord_part_return(request, "SUCCESS", "two")
            (sent,) = rclient.lrange(QUEUE, 0, -1)
            assert body_of(sent)[0] == [[{"a": [1, 2.5]}, "two"]]
        finally:
            close_celery(celery)


async def test_a_failed_part_fails_the_chord_with_chord_error(
    rclient: redis.Redis, redis_url: str
) -> None:
    async with settling(redis_url) as settler:
        errback = canvas.Signature("probe.echo", options={"queue": "errbacks"}).to_wire()
        callback = callback_of(vector("e_chord_header_message.json"))
        callback["options"]["link_error"] = [errback]
        gid = callback["options"]["group_id"]
        rclient.set(keys.taskset(gid, ".s"), 2)
        assert await relier_part(settler, rclient, header_part(0, gid, callback), 1)
        failed = header_part(1, gid, callback)
        failure = results.failure(failed.id, ValueError("bad part", 7))
        follow = canvas.after_failure(failed, canvas.read_canvas(failed), failure,
                                      to_celery_queue)
        delivery = taken(rclient, settler, wire.encode(failed))
        assert await delivery.dead_letter(failed, json.dumps({"reason": "exception"}).encode(),
                                          results.encode(failure), 60, QUEUE, follow_ups=follow)
        assert rclient.llen(QUEUE) == 0  # no callback
        stored = results.decode(rclient.get(keys.result(callback["options"]["task_id"])) or b"")
        assert stored.status == "FAILURE"
        assert stored.result["exc_type"] == "ChordError"
        assert "Dependency part-1 raised ValueError" in stored.result["exc_message"][0]
        (sent,) = rclient.lrange("errbacks", 0, -1)
        assert wire.decode(sent).args == [callback["options"]["task_id"]]


async def test_base64_in_lua_matches_python(rclient: redis.Redis, redis_url: str) -> None:
    """The callback body is base64-encoded by the script: every padding case."""
    async with settling(redis_url) as settler:
        for size in range(1, 8):
            callback = callback_of(vector("e_chord_header_message.json"))
            gid = f"b64-{size}"
            callback["options"]["group_id"] = gid
            rclient.set(keys.taskset(gid, ".s"), 1)
            value = "é" * size  # multi-byte UTF-8, so every remainder mod 3 is met
            assert await relier_part(settler, rclient, header_part(0, gid, callback), value)
            sent = rclient.rpop(QUEUE)
            assert sent is not None and body_of(sent)[0] == [[value]]


# == the native API's wire format (pure) ====================================================


native_app = relier.App()


@native_app.task(name="canvas.v2", queue="q2", version=2)
async def v2(x: int, y: int = 0) -> int:
    return x + y


def test_native_chain_carries_queue_version_and_the_reversed_rest() -> None:
    steps = relier.chain(v2.s(1), v2.s(), v2.si(7, 7).set(queue="other"))
    (sent,) = steps._push().messages
    first = wire.decode(sent.raw)
    assert (first.task, first.args, first.queue, first.version) == ("canvas.v2", [1], "q2", 2)
    assert [s["args"] for s in first.embed["chain"]] == [[7, 7], []]  # last runs next
    (step,) = canvas.after_success(first, canvas.read_canvas(first), 5,
                                   to_celery_queue).messages
    second = wire.decode(step.raw)
    # The version travels with the signature, so a follow-up is stamped like a push.
    assert (second.args, second.queue, second.version) == ([5], "q2", 2)
    assert second.id == steps.steps[1].id and second.root_id == first.id


def test_native_group_and_chord_wire_format() -> None:
    members = relier.group(v2.s(i, i) for i in range(3))
    push, handle = members._push()
    sent = [wire.decode(m.raw) for m in push.messages]
    assert [(m.group, m.group_index) for m in sent] == [(handle.id, i) for i in range(3)]
    assert json.loads(push.group_value)["result"][0] == [handle.id, None]
    body = v2.s(10)
    chord = relier.chord(members, body)
    cpush = chord._push()
    assert cpush.chord_size == 3
    header = wire.decode(cpush.messages[0].raw)
    assert header.embed["chord"]["options"]["group_id"] == header.group
    assert header.embed["chord"]["options"]["task_id"] == chord.body.id


def test_nested_native_canvas_is_refused_when_built() -> None:
    with pytest.raises(TypeError, match="nested group"):
        relier.chain(v2.s(1), relier.group(v2.s(2)))  # type: ignore[arg-type]


async def test_hostile_join_keys_neither_break_the_settle_nor_call_back(
    rclient: redis.Redis, redis_url: str
) -> None:
    async with settling(redis_url) as settler:
        callback = callback_of(vector("e_chord_header_message.json"))
        gid = callback["options"]["group_id"]
        rclient.set(keys.taskset(gid, ".s"), 2)
        rclient.set(keys.taskset(gid, ".t"), "not a number")
        rclient.zadd(keys.taskset(gid, ".j"), {"garbage": 0})
        # The settle lands (the step is done) and the chord fails, naming no part it
        # could not read, instead of calling back with garbage.
        assert await relier_part(settler, rclient, header_part(1, gid, callback), 1)
        assert rclient.llen(QUEUE) == 0
        stored = results.decode(rclient.get(keys.result(callback["options"]["task_id"])) or b"")
        assert stored.result["exc_type"] == "ChordError"
        assert "unreadable" in stored.result["exc_message"][0]
        rclient.delete(keys.taskset(gid, ".c"))
        rclient.set(keys.taskset(gid, ".j"), "a string, not Celery's sorted set")
        assert await relier_part(settler, rclient, header_part(0, gid, callback), 1)
        assert rclient.llen(QUEUE) == 0


def test_immutable_signature_is_checked_like_a_push() -> None:
    with pytest.raises(relier.ArgumentError, match="argument 'x'"):
        v2.si("not an int")
    with pytest.raises(relier.ArgumentError, match="JSON"):
        v2.s(object())
