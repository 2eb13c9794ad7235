"""Replay every capture in ``tests/vectors/`` (Celery 5.7, see SPEC.md) against the codec.

Nothing here needs Redis: each vector is the exact bytes of one Redis value, so the
protocol layer either reads it as Celery meant it, or refuses it with a reason.
"""

from __future__ import annotations

import base64
import copy
import json
import pickle
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from relier.errors import PayloadError
from relier.protocol import message, results
from relier.protocol.message import TaskMessage
from relier.store import keys

VECTORS = Path(__file__).parent / "vectors"

NO_EMBED: dict[str, Any] = {"callbacks": None, "errbacks": None, "chain": None, "chord": None}
CELERY_OID = "f6e88de2-2cda-3c6c-8e94-eddfe7adad05"


def raw(name: str) -> bytes:
    """The exact bytes of one vector."""
    return (VECTORS / name).read_bytes()


def load(name: str) -> Any:
    return json.loads(raw(name))


def payload_of(envelope_bytes: bytes) -> Any:
    """``[args, kwargs, embed]`` (or a v1 object) from an envelope, decoded with the stdlib."""
    envelope = json.loads(envelope_bytes)
    body = envelope["body"]
    if envelope["properties"].get("body_encoding") == "base64":
        return json.loads(base64.b64decode(body))
    return json.loads(body)


def utc(text: str) -> datetime:
    """A timestamp written in a vector, as the aware datetime it means."""
    moment = datetime.fromisoformat(text)
    assert moment.tzinfo is not None
    return moment


def meaning(task: str, task_id: str, args: list[Any], kwargs: dict[str, Any],
            **changes: Any) -> dict[str, Any]:
    """What a message means, with Celery's defaults for everything not given."""
    expected: dict[str, Any] = {
        "task": task,
        "id": task_id,
        "args": args,
        "kwargs": kwargs,
        "queue": "celery",
        "priority": 0,
        "retries": 0,
        "eta": None,
        "expires": None,
        "hard_timeout": None,
        "soft_timeout": None,
        "root_id": task_id,
        "parent_id": None,
        "group": None,
        "group_index": None,
        "ignore_result": None,
        "protocol": 2,
        "embed": NO_EMBED,
    }
    expected.update(changes)
    return expected


def meaning_of(msg: TaskMessage, fields: dict[str, Any]) -> dict[str, Any]:
    return {name: getattr(msg, name) for name in fields}


def signature(task: str, args: list[Any], kwargs: dict[str, Any],
              options: dict[str, Any]) -> dict[str, Any]:
    """A Celery signature as it appears in ``embed``."""
    return {"task": task, "args": args, "kwargs": kwargs, "options": options,
            "subtask_type": None, "immutable": False}


GROUP = "00000000-0000-4000-8000-000000000022"
CHORD_GROUP = "ec4f4f2d-a97b-4a55-ab7e-5e4ca0eef27b"
CHORD_CALLBACK = "c0d9d161-aa40-4d65-b57a-4d0e5b0a714d"
CHORD_ROOT = "3c676404-2964-46d0-a7f2-7c7ccfb0376a"
RETRIED = "e7000000-0000-4000-8000-000000000007"

#: The meaning of every task message vector, written from INDEX.md and SPEC.md.
MESSAGES: dict[str, dict[str, Any]] = {
    "a_send_task_default.json": meaning(
        "probe.add", "00000000-0000-4000-8000-000000000001", [2, 3], {"z": 4}),
    "a_delay_default.json": meaning(
        "probe.add", "a5d13c1e-fc61-4a5e-8903-dae83f5fc9af", [5, 6], {"z": 7},
        ignore_result=False),
    "a_unicode_args.json": meaning(
        "probe.echo", "00000000-0000-4000-8000-000000000002",
        ["héllo ☃", 1.5, None, True, [1, {"k": "v"}]], {"üml": "😀"}),
    "b_named_queue.json": meaning(
        "probe.add", "00000000-0000-4000-8000-000000000003", [1, 1], {},
        queue="high_priority"),
    # With a named exchange the routing key is not the list: the binding maps
    # probe.rk to probe_q. The message only knows its routing key.
    "b_named_queue_via_routing.json": meaning(
        "probe.add", "00000000-0000-4000-8000-000000000004", [1, 2], {}, queue="probe.rk"),
    "c_countdown.json": meaning(
        "probe.add", "00000000-0000-4000-8000-000000000005", [1, 2], {},
        eta=utc("2026-11-24T12:35:20.358553+00:00")),
    "c_eta_expires_retries_limits.json": meaning(
        "probe.add", "00000000-0000-4000-8000-000000000006", [1, 2], {},
        eta=datetime(2030, 1, 2, 3, 4, 5, 678901, tzinfo=UTC),
        expires=datetime(2030, 1, 2, 4, 4, 5, 678901, tzinfo=UTC),
        retries=3, hard_timeout=60.0, soft_timeout=50.0),
    "c_expires_seconds.json": meaning(
        "probe.add", "00000000-0000-4000-8000-000000000007", [1, 2], {},
        expires=utc("2026-11-24T12:36:50.363735+00:00")),
    "c_shadow_ignore_result_custom_headers.json": meaning(
        "probe.add", "00000000-0000-4000-8000-000000000008", [1, 2], {},
        ignore_result=True),
    **{
        f"d_priority_{p}.json": meaning(
            "probe.add", f"00000000-0000-4000-8000-0000000000{tid}", [p, 0], {}, priority=p)
        for p, tid in [(0, "10"), (1, "11"), (3, "13"), (5, "15"), (6, "16"), (9, "19"),
                       (255, "99")]
    },
    "e_link_errback.json": meaning(
        "probe.add", "00000000-0000-4000-8000-000000000020", [1, 2], {}, ignore_result=False,
        embed={
            "callbacks": [signature("probe.add", [10], {}, {})],
            "errbacks": [signature("probe.echo", [], {"errback": True}, {})],
            "chain": None,
            "chord": None,
        }),
    # The chain runs from the end: add(3) is next, add(4) is last and got the chain's id.
    "e_chain.json": meaning(
        "probe.add", "dac209c1-338e-4088-83ab-682ba933477b", [1, 2], {}, ignore_result=False,
        embed={
            "callbacks": None,
            "errbacks": None,
            "chain": [
                signature("probe.add", [4], {}, {
                    "task_id": "00000000-0000-4000-8000-000000000021", "reply_to": CELERY_OID}),
                signature("probe.add", [3], {}, {
                    "task_id": "cde312f6-7cd5-40b6-9caa-88812b739590", "reply_to": CELERY_OID}),
            ],
            "chord": None,
        }),
    "e_group_0.json": meaning(
        "probe.add", "282c1ce8-01a0-4087-8a79-a9d04ae9790b", [2, 2], {}, ignore_result=False,
        group=GROUP, group_index=1),
    "e_group_1.json": meaning(
        "probe.add", "29cec95e-e916-4c01-9081-4d307a72e9c0", [1, 1], {}, ignore_result=False,
        group=GROUP, group_index=0),
    "e_chord_header_message.json": meaning(
        "probe.add", "29f964f4-c0db-4b5f-b29a-9b83130603a9", [0, 0], {}, ignore_result=False,
        group=CHORD_GROUP, group_index=0,
        embed={**NO_EMBED, "chord": signature("probe.tsum", [], {}, {
            "task_id": CHORD_CALLBACK,
            "reply_to": "c3ebf847-4417-3097-9d2f-c546ecf18687",
            "group_id": CHORD_GROUP,
        })}),
    "e_chord_callback_message.json": meaning(
        "probe.tsum", CHORD_CALLBACK, [[0, 2, 4]], {}, ignore_result=False,
        group=CHORD_GROUP, root_id=CHORD_ROOT, parent_id=CHORD_ROOT),
    "e_retry_republished_by_worker.json": meaning(
        "probe.retry_once", RETRIED, [7], {}, ignore_result=False, retries=1,
        eta=utc("2026-11-24T12:36:00.310683+00:00"), parent_id=RETRIED),
    "e_restored_message_rpush.json": meaning(
        "probe.sleepy", "vt000000-0000-4000-8000-000000000001", [3], {}),
    "handbuilt_full.json": meaning(
        "probe.add", "aaaaaaaa-0000-4000-8000-000000004720", [20, 22], {"z": 100},
        ignore_result=False),
    # Only task and id: no priority property, no root_id header.
    "handbuilt_minimal.json": meaning(
        "probe.add", "aaaaaaaa-0000-4000-8000-000000002086", [20, 22], {"z": 100},
        priority=None, root_id=None),
    "handbuilt_rawbody.json": meaning(
        "probe.add", "aaaaaaaa-0000-4000-8000-000000022192", [20, 22], {"z": 100},
        priority=None, root_id=None),
    "handbuilt_prio9.json": meaning(
        "probe.add", "aaaaaaaa-0000-4000-8000-000000020642", [20, 22], {"z": 100},
        ignore_result=False, priority=9),
    "handbuilt_raw_utf8.json": meaning(
        "probe.echo", "9c979603-e63c-44d7-88d2-58ec38fb8628", ["hé ☃ 😀"], {"clé": "ü"},
        ignore_result=False),
    # An unknown task is the worker's business; the codec reads it like any other.
    "handbuilt_unknown.json": meaning(
        "relier.not_registered", "aaaaaaaa-0000-4000-8000-000000001063", [20, 22], {"z": 100},
        ignore_result=False),
    "handbuilt_v1.json": meaning(
        "probe.add", "ff1d8ac4-2f0b-40b4-9325-94a27e374076", [1, 2], {"z": 3}, protocol=1),
    "v1_send_task.json": meaning(
        "probe.add", "00000000-0000-4000-8000-000000000030", [2, 3], {"z": 4}, protocol=1,
        eta=utc("2026-11-24T12:35:19.281362+00:00"),
        expires=utc("2026-11-24T12:36:09.281362+00:00")),
    "roundtrip_celery_sent.json": meaning(
        "probe.echo", "5d336801-0c0c-4cec-93a4-3efa6df2e6ab",
        ["hé", [1, 2], {"a": None}], {"k": 1.5, "u": "☃"},
        queue="decode_test", priority=6, eta=utc("2026-11-24T12:38:54.882319+00:00")),
}

#: Vectors that are not task messages, and why. Each must still be refused by decode().
NOT_TASK_MESSAGES: dict[str, str] = {
    "e_chord_join_zset_member.json": "chord join entry [1, tid, state, result] (backend db)",
    "e_groupresult_save_value.json": "GroupResult.save() value (backend db)",
    "e_result_pubsub_message.json": "result notification; read in test_protocol_results.py",
    "e_unacked_hash_value.json": "[envelope, exchange, rk]; its envelope is read below",
    "e_unacked_snapshot_during_task.json": "snapshot of unacked keys; entries read below",
    "f_bindings_worker_idle.json": "_kombu.binding* snapshot; separator checked below",
    "g_event_worker_online.json": "worker event (celeryev fanout), not a task",
    "g_event_worker_heartbeat.json": "worker event (celeryev fanout), not a task",
    "g_event_worker_offline.json": "worker event (celeryev fanout), not a task",
    "g_event_task_multi.json": "batched task events (list body), not a task",
    "g_event_task_multi_with_failed.json": "batched task events (list body), not a task",
    "g_event_task_multi_with_retried.json": "batched task events (list body), not a task",
    "g_pidbox_ping_publish.json": "remote-control broadcast, not a task",
    "g_pidbox_hello_publish.json": "remote-control broadcast, not a task",
    "g_pidbox_ping_reply_lpush.json": "remote-control reply, not a task",
    "producer_index.json": "list keys per producer case; checked against keys.queue_list",
    "worker_snapshots.json": "DB dumps; their unacked entries and results are read below",
    **{
        path.name: "result-backend value; replayed in test_protocol_results.py"
        for path in sorted(VECTORS.glob("result_*.json"))
    },
}


def test_every_vector_is_classified() -> None:
    """A new capture must be added to one table, not silently left out."""
    on_disk = {path.name for path in VECTORS.glob("*.json")}
    assert not set(MESSAGES) & set(NOT_TASK_MESSAGES)
    assert on_disk == set(MESSAGES) | set(NOT_TASK_MESSAGES)


# --- decoding Celery's messages ---------------------------------------------------------


@pytest.mark.parametrize("name", sorted(MESSAGES))
def test_decode_gives_the_meaning_the_vector_records(name: str) -> None:
    expected = MESSAGES[name]
    msg = message.decode(raw(name))
    assert meaning_of(msg, expected) == expected


@pytest.mark.parametrize("name", sorted(MESSAGES))
def test_decoded_times_are_timezone_aware(name: str) -> None:
    msg = message.decode(raw(name))
    for moment in (msg.eta, msg.expires):
        assert moment is None or moment.utcoffset() is not None


@pytest.mark.parametrize("name", sorted(MESSAGES))
def test_headers_and_properties_are_kept_as_received(name: str) -> None:
    """Everything a producer wrote is in ``.headers``/``.properties``, known or not."""
    envelope = load(name)
    msg = message.decode(raw(name))
    assert msg.headers == envelope["headers"]
    assert msg.properties == envelope["properties"]


#: Headers and properties Relier does not act on but must carry, per vector.
EXTRAS: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "c_shadow_ignore_result_custom_headers.json": (
        {"shadow": "probe.add[shadowed]", "x-custom": "hello"}, {}),
    "c_expires_seconds.json": ({}, {"expiration": "120000"}),
    "e_restored_message_rpush.json": (
        {"redelivered": True},
        {"delivery_info": {"exchange": "", "routing_key": "celery", "redelivered": True}}),
    "e_retry_republished_by_worker.json": ({}, {"origin": "gen8599@vm"}),
    "b_named_queue_via_routing.json": (
        {}, {"delivery_info": {"exchange": "probe_exchange", "routing_key": "probe.rk"}}),
    "a_unicode_args.json": ({"kwargsrepr": "{'üml': '😀'}"}, {}),
    "handbuilt_raw_utf8.json": ({"argsrepr": "('hé ☃ 😀',)"}, {}),
}


@pytest.mark.parametrize("name", sorted(EXTRAS))
def test_custom_headers_and_properties_survive_a_round_trip(name: str) -> None:
    headers, properties = EXTRAS[name]
    first = message.decode(raw(name))
    for msg in (first, message.decode(message.encode(first))):
        assert {k: msg.headers[k] for k in headers} == headers
        assert {k: msg.properties[k] for k in properties} == properties


# --- re-encoding ------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(MESSAGES))
def test_encode_then_decode_keeps_the_meaning(name: str) -> None:
    first = message.decode(raw(name))
    untouched = copy.deepcopy(first)
    encoded = message.encode(first)
    assert first == untouched, "encode() must not change the message it writes"
    again = message.decode(encoded)
    expected = {**MESSAGES[name], "protocol": 2}  # a v1 message is written as v2
    assert meaning_of(again, expected) == expected


@pytest.mark.parametrize("name", sorted(MESSAGES))
def test_encode_keeps_every_header_and_property(name: str) -> None:
    first = message.decode(raw(name))
    again = message.decode(message.encode(first))
    for header, value in first.headers.items():
        assert again.headers[header] == value, header
    # The only property encode() may add is the body encoding it really used.
    assert again.properties == {**first.properties, "body_encoding": "base64"}


@pytest.mark.parametrize("name", sorted(MESSAGES))
def test_encode_writes_a_v2_envelope_celery_accepts(name: str) -> None:
    """The minimum of SPEC §2.5: base64 body of a 3-element array, and the v2 headers."""
    encoded = message.encode(message.decode(raw(name)))
    envelope = json.loads(encoded)
    assert list(envelope) == ["body", "content-encoding", "content-type", "headers", "properties"]
    assert envelope["content-type"] == "application/json"
    assert envelope["content-encoding"] == "utf-8"
    assert envelope["properties"]["body_encoding"] == "base64"
    assert envelope["headers"]["task"] == MESSAGES[name]["task"]
    assert envelope["headers"]["id"] == MESSAGES[name]["id"]
    args, kwargs, embed = payload_of(encoded)
    assert (args, kwargs, embed) == (
        MESSAGES[name]["args"], MESSAGES[name]["kwargs"], MESSAGES[name]["embed"])


@pytest.mark.parametrize("name", ["handbuilt_v1.json", "v1_send_task.json"])
def test_v1_is_rewritten_with_its_facts_in_v2_headers(name: str) -> None:
    body = payload_of(raw(name))
    headers = json.loads(message.encode(message.decode(raw(name))))["headers"]
    assert headers["task"] == body["task"]
    assert headers["id"] == headers["root_id"] == body["id"]
    assert headers["eta"] == body["eta"]
    assert headers["expires"] == body["expires"]
    assert headers["timelimit"] == body["timelimit"]
    assert headers["retries"] == body["retries"]


def test_v1_group_and_timelimit_are_read_and_carried_to_v2() -> None:
    envelope = load("v1_send_task.json")
    body = payload_of(raw("v1_send_task.json"))
    body.update(taskset="g-1", group_index=2, timelimit=[30, 20])
    set_body(envelope, body)
    msg = message.decode(json.dumps(envelope))
    assert (msg.group, msg.group_index, msg.hard_timeout, msg.soft_timeout) == (
        "g-1", 2, 30.0, 20.0)
    again = message.decode(message.encode(msg))
    assert (again.group, again.group_index, again.hard_timeout, again.soft_timeout) == (
        "g-1", 2, 30.0, 20.0)


def test_redelivered_marks_a_message_the_way_kombu_restore_does() -> None:
    restored = load("e_restored_message_rpush.json")
    original = copy.deepcopy(restored)
    del original["headers"]["redelivered"]
    del original["properties"]["delivery_info"]["redelivered"]
    msg = message.decode(json.dumps(original))
    message.redelivered(msg)
    again = message.decode(message.encode(msg))
    assert again.headers == restored["headers"]
    assert again.properties == restored["properties"]


def test_unacked_hash_entry_holds_the_envelope_byte_for_byte() -> None:
    """``unacked`` keeps ``[envelope, exchange, routing_key]``; the envelope decodes as is."""
    envelope, exchange, routing_key = load("e_unacked_hash_value.json")
    msg = message.decode(json.dumps(envelope))
    assert (msg.task, msg.id, msg.args) == (
        "probe.sleepy", "e1000000-0000-4000-8000-000000000001", [5])
    assert (exchange, routing_key) == ("", msg.queue)
    tag = (VECTORS / "e_unacked_hash_field.txt").read_text()
    assert msg.properties["delivery_tag"] == tag
    snapshot = load("e_unacked_snapshot_during_task.json")
    assert snapshot["unacked"]["value"][tag] == raw("e_unacked_hash_value.json").decode()


def _snapshot_unacked() -> list[tuple[str, str]]:
    snapshots = load("worker_snapshots.json")
    return [
        (tag, value)
        for moment in snapshots.values()
        for tag, value in moment["db0"].get("unacked", {}).get("value", {}).items()
    ]


@pytest.mark.parametrize(("tag", "entry"), _snapshot_unacked())
def test_every_unacked_entry_in_the_worker_snapshots_decodes(tag: str, entry: str) -> None:
    envelope, _exchange, routing_key = json.loads(entry)
    msg = message.decode(json.dumps(envelope))
    assert msg.properties["delivery_tag"] == tag
    assert msg.queue == routing_key
    assert msg.task.startswith("probe.")


# --- unicode ----------------------------------------------------------------------------


def restyle(envelope_bytes: bytes, *, ascii_only: bool) -> bytes:
    """The same message written by kombu (``ascii_only``) or by a raw-UTF-8 producer."""
    envelope = json.loads(envelope_bytes)
    body = json.dumps(payload_of(envelope_bytes), ensure_ascii=ascii_only).encode()
    envelope["body"] = base64.b64encode(body).decode()
    return json.dumps(envelope, ensure_ascii=ascii_only).encode()


@pytest.mark.parametrize("name", ["a_unicode_args.json", "handbuilt_raw_utf8.json"])
def test_ascii_escaped_and_raw_utf8_decode_to_the_same_strings(name: str) -> None:
    escaped = restyle(raw(name), ascii_only=True)
    utf8 = restyle(raw(name), ascii_only=False)
    assert escaped.isascii() and not utf8.isascii()
    assert b"\\u" in base64.b64decode(json.loads(escaped)["body"])
    decoded = [message.decode(variant) for variant in (raw(name), escaped, utf8)]
    expected = MESSAGES[name]
    for msg in decoded:
        assert (msg.args, msg.kwargs) == (expected["args"], expected["kwargs"])
        assert msg.headers == decoded[0].headers


def test_the_two_unicode_vectors_are_written_in_the_two_styles() -> None:
    """The premise of the test above: kombu escapes, the hand-built one does not."""
    assert raw("a_unicode_args.json").isascii()
    assert b"\\ud83d\\ude00" in base64.b64decode(load("a_unicode_args.json")["body"])
    assert "😀".encode() in base64.b64decode(load("handbuilt_raw_utf8.json")["body"])
    assert "☃".encode() in raw("handbuilt_raw_utf8.json")


# --- priorities and list keys -----------------------------------------------------------

PRODUCER_INDEX: dict[str, Any] = load("producer_index.json")
#: The named exchange's list comes from a binding lookup, not from the message.
ROUTED_BY_BINDING = {"b_named_queue_via_routing"}


@pytest.mark.parametrize("case", sorted(set(PRODUCER_INDEX) - ROUTED_BY_BINDING))
def test_queue_list_matches_the_list_celery_pushed_to(case: str) -> None:
    entry = PRODUCER_INDEX[case]
    msg = message.decode(raw(f"{case}.json"))
    key = keys.queue_list(msg.queue, msg.priority)
    assert key == entry["list_key"]
    assert key.encode().hex() == entry["list_key_bytes_hex"]
    assert key in keys.queue_lists(msg.queue)


def test_a_named_exchange_is_routed_by_binding_not_by_routing_key() -> None:
    msg = message.decode(raw("b_named_queue_via_routing.json"))
    assert PRODUCER_INDEX["b_named_queue_via_routing"]["list_key"] == "probe_q"
    assert msg.properties["delivery_info"]["exchange"] == "probe_exchange"
    assert keys.queue_list(msg.queue, msg.priority) != "probe_q"


@pytest.mark.parametrize(
    ("priority", "list_key"),
    [(None, "q"), (0, "q"), (1, "q"), (2, "q"), (3, "q\x06\x163"), (5, "q\x06\x163"),
     (6, "q\x06\x166"), (8, "q\x06\x166"), (9, "q\x06\x169"), (10, "q\x06\x169"),
     (255, "q\x06\x169"), (-4, "q")],
)
def test_priority_buckets(priority: int | None, list_key: str) -> None:
    assert keys.queue_list("q", priority) == list_key


def test_queue_lists_are_in_kombu_order_with_its_separator() -> None:
    assert keys.queue_lists("celery") == (
        "celery", "celery\x06\x163", "celery\x06\x166", "celery\x06\x169")
    assert keys.PRIORITY_SEPARATOR.encode() == b"\x06\x16"


def test_kombu_bindings_use_the_same_separator() -> None:
    """A direct queue's binding member is ``rk SEP pattern SEP queue``."""
    bindings = load("f_bindings_worker_idle.json")
    for queue in ("celery", "high_priority"):
        (member,) = bindings[f"_kombu.binding.{queue}"]["value"]
        assert member.split(keys.PRIORITY_SEPARATOR) == [queue, "", queue]


# --- building our own messages ----------------------------------------------------------

#: (vector, the call that produced it)
CELERY_CALLS = [
    ("a_send_task_default.json", "probe.add", [2, 3], {"z": 4}),
    ("a_delay_default.json", "probe.add", [5, 6], {"z": 7}),
    ("handbuilt_full.json", "probe.add", [20, 22], {"z": 100}),
]


def build_like(name: str, task: str, args: list[Any], kwargs: dict[str, Any],
               **options: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """Our envelope for the call behind a vector, and the vector's envelope."""
    theirs = load(name)
    ours = message.build(
        task, args, kwargs,
        queue=theirs["properties"]["delivery_info"]["routing_key"],
        task_id=theirs["headers"]["id"],
        origin=theirs["headers"]["origin"],
        **options,
    )
    return json.loads(message.encode(ours)), theirs


@pytest.mark.parametrize(("name", "task", "args", "kwargs"), CELERY_CALLS)
def test_build_writes_the_header_set_celery_writes(
    name: str, task: str, args: list[Any], kwargs: dict[str, Any]
) -> None:
    ours, theirs = build_like(name, task, args, kwargs)
    assert list(ours) == list(theirs)
    assert list(ours["headers"]) == list(theirs["headers"])
    assert list(ours["headers"]) == list(load("handbuilt_full.json")["headers"])
    # Celery's send_task leaves ignore_result null (the task decides); build() decides.
    assert ours["headers"]["ignore_result"] is False
    without = {"ignore_result"}
    assert {k: v for k, v in ours["headers"].items() if k not in without} == {
        k: v for k, v in theirs["headers"].items() if k not in without}
    assert (ours["content-type"], ours["content-encoding"]) == (
        theirs["content-type"], theirs["content-encoding"])


@pytest.mark.parametrize(("name", "task", "args", "kwargs"), CELERY_CALLS)
def test_build_writes_the_properties_celery_writes(
    name: str, task: str, args: list[Any], kwargs: dict[str, Any]
) -> None:
    ours, theirs = build_like(name, task, args, kwargs)
    assert list(ours["properties"]) == list(theirs["properties"])
    for same in ("correlation_id", "delivery_mode", "delivery_info", "priority",
                 "body_encoding"):
        assert ours["properties"][same] == theirs["properties"][same], same
    tag = ours["properties"]["delivery_tag"]
    assert isinstance(tag, str) and tag != theirs["properties"]["delivery_tag"]


@pytest.mark.parametrize(("name", "task", "args", "kwargs"), CELERY_CALLS)
def test_build_body_is_base64_of_args_kwargs_embed(
    name: str, task: str, args: list[Any], kwargs: dict[str, Any]
) -> None:
    ours, theirs = build_like(name, task, args, kwargs)
    body = json.loads(base64.b64decode(ours["body"], validate=True))
    assert body == payload_of(json.dumps(theirs).encode()) == [args, kwargs, NO_EMBED]
    assert list(body[2]) == ["callbacks", "errbacks", "chain", "chord"]


def test_build_writes_eta_expires_and_timelimit_like_celery() -> None:
    """``timelimit`` is ``[hard, soft]`` and times are ISO-8601 with an offset."""
    theirs = load("c_eta_expires_retries_limits.json")
    msg = message.build(
        "probe.add", [1, 2], {}, queue="celery", task_id=theirs["headers"]["id"],
        eta=datetime(2030, 1, 2, 3, 4, 5, 678901, tzinfo=UTC),
        expires=datetime(2030, 1, 2, 4, 4, 5, 678901, tzinfo=UTC),
        hard_timeout=60, soft_timeout=50,
    )
    ours = json.loads(message.encode(msg))
    for header in ("eta", "expires", "timelimit"):
        assert ours["headers"][header] == theirs["headers"][header], header
    again = message.decode(message.encode(msg))
    assert (again.hard_timeout, again.soft_timeout) == (60.0, 50.0)
    # kombu's AMQP TTL: milliseconds until expiry, as a string.
    assert msg.expires is not None
    remaining_ms = (msg.expires - datetime.now(UTC)).total_seconds() * 1000
    assert abs(int(ours["properties"]["expiration"]) - remaining_ms) < 60_000


def test_build_takes_a_naive_time_as_utc() -> None:
    naive = datetime(2030, 1, 2, 3, 4, 5)
    msg = message.build("probe.add", [], {}, queue="celery", eta=naive, expires=naive)
    again = message.decode(message.encode(msg))
    assert again.eta == again.expires == naive.replace(tzinfo=UTC)
    assert msg.eta == msg.expires == naive.replace(tzinfo=UTC)
    assert int(msg.properties["expiration"]) > 0


def test_build_keeps_the_priority_as_given_like_kombu() -> None:
    msg = message.decode(message.encode(
        message.build("probe.add", [255, 0], {}, queue="celery", priority=255)))
    theirs = message.decode(raw("d_priority_255.json"))
    assert msg.priority == theirs.priority == 255
    assert keys.queue_list(msg.queue, msg.priority) == "celery\x06\x169"


def test_a_naive_header_time_is_read_as_utc() -> None:
    envelope = load("c_countdown.json")
    envelope["headers"]["eta"] = "2026-11-24T12:35:20.358553"
    msg = message.decode(json.dumps(envelope))
    assert msg.eta == datetime(2026, 11, 24, 12, 35, 20, 358553, tzinfo=UTC)


# --- messages that must be refused --------------------------------------------------------


def mutated(change: Any) -> bytes:
    """a_send_task_default.json with one change applied to its parsed envelope."""
    envelope = load("a_send_task_default.json")
    change(envelope)
    return json.dumps(envelope).encode()


def set_body(envelope: dict[str, Any], payload: Any) -> None:
    envelope["body"] = base64.b64encode(json.dumps(payload).encode()).decode()


def pickled(envelope: dict[str, Any]) -> None:
    envelope["content-type"] = "application/x-python-serialize"
    envelope["content-encoding"] = "binary"
    envelope["body"] = base64.b64encode(pickle.dumps(((2, 3), {"z": 4}, {}))).decode()


REFUSED: dict[str, tuple[bytes, str]] = {
    "garbage_bytes": (b"\x80\x04garbage\xff not json", "not_json"),
    "truncated_json": (raw("a_send_task_default.json")[:-5], "not_json"),
    "pickle": (mutated(pickled), "not_json"),
    "yaml": (mutated(lambda e: e.update({"content-type": "application/x-yaml"})), "not_json"),
    "body_not_json": (mutated(lambda e: e.update(
        {"body": base64.b64encode(b"(2, 3)").decode()})), "not_json"),
    "two_element_body": (mutated(lambda e: set_body(e, [[2, 3], {"z": 4}])), "payload_invalid"),
    "args_not_a_list": (mutated(lambda e: set_body(e, [{"a": 1}, {}, NO_EMBED])),
                        "payload_invalid"),
    "kwargs_not_an_object": (mutated(lambda e: set_body(e, [[], [], NO_EMBED])),
                             "payload_invalid"),
    "missing_id": (mutated(lambda e: e["headers"].pop("id")), "payload_invalid"),
    "id_not_a_string": (mutated(lambda e: e["headers"].update({"id": 7})), "payload_invalid"),
    "task_null": (mutated(lambda e: e["headers"].update({"task": None})), "payload_invalid"),
    "missing_content_type": (mutated(lambda e: e.pop("content-type")), "payload_invalid"),
    "invalid_base64": (mutated(lambda e: e.update({"body": "W1sy!!not base64"})),
                       "payload_invalid"),
    "unknown_body_encoding": (mutated(lambda e: e["properties"].update(
        {"body_encoding": "rot13"})), "payload_invalid"),
    "eta_not_iso": (mutated(lambda e: e["headers"].update({"eta": "tomorrow"})),
                    "payload_invalid"),
    "envelope_is_a_list": (b"[1, 2, 3]", "payload_invalid"),
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_bad_messages_are_refused_with_a_reason(case: str) -> None:
    data, reason = REFUSED[case]
    with pytest.raises(PayloadError) as caught:
        message.decode(data)
    assert caught.value.reason == reason


@pytest.mark.parametrize("name", sorted(NOT_TASK_MESSAGES))
def test_values_that_are_not_task_messages_are_refused(name: str) -> None:
    """An event, a control message or a result pushed onto a task list is never run."""
    with pytest.raises(PayloadError) as caught:
        message.decode(raw(name))
    assert caught.value.reason == "payload_invalid"


def test_result_notification_names_its_channel() -> None:
    meta = results.decode(raw("e_result_pubsub_message.json"))
    channel = (VECTORS / "e_result_pubsub_channel.txt").read_text()
    assert keys.result(meta.task_id) == channel
    assert (meta.status, meta.result) == ("SUCCESS", "slept 5")


# --- property: build -> encode -> decode ----------------------------------------------------

text = st.one_of(
    st.text(st.characters(codec="utf-8"), max_size=20),
    st.text(st.characters(min_codepoint=0x10000, codec="utf-8"), min_size=1, max_size=5),
)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False) | text,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(text, inner, max_size=4),
    max_leaves=20,
)


def same(left: Any, right: Any) -> bool:
    """Equal, and of the same JSON type all the way down (1 is not 1.0 or True)."""
    if type(left) is not type(right):
        return False
    if isinstance(left, list):
        return len(left) == len(right) and all(map(same, left, right))
    if isinstance(left, dict):
        return list(left) == list(right) and all(same(left[k], right[k]) for k in left)
    return bool(left == right)


@settings(max_examples=300, deadline=None, database=None)
@given(
    task=text.filter(bool),
    queue=text.filter(bool),
    args=st.lists(json_values, max_size=5),
    kwargs=st.dictionaries(text, json_values, max_size=5),
    task_id=st.none() | st.uuids().map(str),
)
def test_build_encode_decode_round_trips(
    task: str, queue: str, args: list[Any], kwargs: dict[str, Any], task_id: str | None
) -> None:
    built = message.build(task, args, kwargs, queue=queue, task_id=task_id)
    decoded = message.decode(message.encode(built))
    assert same(decoded.args, args)
    assert same(decoded.kwargs, kwargs)
    assert decoded.id == built.id == (task_id or built.id)
    assert decoded.task == task
    assert decoded.queue == queue
