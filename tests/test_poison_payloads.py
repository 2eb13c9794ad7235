"""Bytes a worker cannot run, LPUSHed straight onto its queue: each lands in the DLQ with
its reason, the worker never crashes, and it serves the next task.

(tests/test_protocol_vectors.py checks the codec's verdict on these shapes and more; this
file checks what a running worker does with them.)
"""

from __future__ import annotations

import base64
import json
import pickle
import uuid
from pathlib import Path
from typing import Any

import pytest
import redis

from relier import ArgumentError, TaskFailed
from relier.errors import PayloadError
from relier.handle import TaskHandle
from relier.protocol import dead_letter
from relier.protocol import message as wire
from relier.settings import Settings
from relier.store import keys
from tests.conftest import StartWorker
from tests.taskapps import basic

APP = "tests.taskapps.basic:app"
VECTORS = Path(__file__).parent / "vectors"
TEN_MB = 10 * 1000 * 1000

pytestmark = pytest.mark.usefixtures("basic_app")


def celery_envelope(task_id: str | None, body: Any) -> dict[str, Any]:
    """A real Celery capture, retargeted to basic.fail on queue default."""
    envelope: dict[str, Any] = json.loads((VECTORS / "a_send_task_default.json").read_bytes())
    envelope["headers"].update(task="basic.fail", id=task_id, root_id=task_id)
    envelope["properties"]["delivery_info"]["routing_key"] = "default"
    envelope["body"] = base64.b64encode(json.dumps(body).encode()).decode()
    return envelope


def garbage(task_id: str) -> bytes:
    return b"\x80\x04\x95garbage\xff not json at all"


def two_element_body(task_id: str) -> bytes:
    return json.dumps(celery_envelope(task_id, [["boom"], {}])).encode()


def missing_task_id(task_id: str) -> bytes:
    envelope = celery_envelope(task_id, [["boom"], {}, {}])
    del envelope["headers"]["id"]
    return json.dumps(envelope).encode()


def pickle_content_type(task_id: str) -> bytes:
    envelope = celery_envelope(task_id, [])
    envelope["content-type"] = "application/x-python-serialize"
    envelope["content-encoding"] = "binary"
    envelope["body"] = base64.b64encode(pickle.dumps((("boom",), {}, {}))).decode()
    return json.dumps(envelope).encode()


def ten_megabytes(task_id: str) -> bytes:
    """A well-formed message whose argument is 10 MB (what a careless producer sends)."""
    message = wire.build("basic.fail", ["x" * TEN_MB], {}, queue="default", task_id=task_id)
    return wire.encode(message)


#: shape -> (bytes for a task id, reason, whether the entry can name the task and id)
BAD: dict[str, tuple[Any, str, bool]] = {
    "garbage bytes": (garbage, "not_json", False),
    "2-element body": (two_element_body, "payload_invalid", True),
    "missing task id": (missing_task_id, "payload_invalid", False),
    "pickle content type": (pickle_content_type, "not_json", True),
    "10 MB payload": (ten_megabytes, "payload_invalid", True),
}


def test_each_bad_message_is_dead_lettered_and_the_worker_serves_the_next(
    start_worker: StartWorker, rclient: redis.Redis
) -> None:
    worker = start_worker(APP)
    sent: dict[str, tuple[str, bytes]] = {}
    for number, (shape, (make, _, _)) in enumerate(BAD.items()):
        task_id = str(uuid.uuid4())
        raw = make(task_id)
        sent[shape] = (task_id, raw)
        rclient.lpush("default", raw)
        # The next task behind the bad one is served by the same, still running worker.
        assert basic.add.push(number, 1).result(timeout=30) == number + 1
        assert worker.process.poll() is None, f"the worker died on the {shape}"
    assert sum("consuming" in line for line in worker.output.splitlines()) == 1

    stored = rclient.lrange(keys.dead_letters("default"), 0, -1)
    entries = [dead_letter.decode(e) for e in stored]
    assert len(entries) == len(BAD)
    for shape, (_, reason, named) in BAD.items():
        task_id, raw = sent[shape]
        [(entry, entry_raw)] = [(e, r) for e, r in zip(entries, stored, strict=True)
                                if dead_letter.replay_bytes(e) == raw or raw in r]
        assert entry.reason == reason, shape
        if named:
            # Its headers were readable: the entry names it and its caller is told.
            assert (entry.task_id, entry.task) == (task_id, "basic.fail"), shape
            with pytest.raises(TaskFailed) as caught:
                TaskHandle(basic.app, task_id).result(timeout=5)
            assert caught.value.exc_type == "PayloadError", shape
        else:
            assert entry.task_id is None, shape
        if shape == "garbage bytes":
            assert dead_letter.replay_bytes(entry) == raw  # kept byte for byte, in base64
        else:
            assert raw in entry_raw, shape  # JSON embedded as it arrived, not re-encoded
    oversized = next(e for e in entries if e.task_id == sent["10 MB payload"][0])
    assert "max_message_bytes" in oversized.error
    assert len(oversized.error) < 300


def test_a_producer_refuses_a_message_over_the_limit(rclient: redis.Redis) -> None:
    with pytest.raises(ArgumentError, match="max_message_bytes") as caught:
        basic.fail.push("x" * TEN_MB)
    assert "basic.fail" in str(caught.value)
    assert rclient.llen("default") == 0
    assert Settings().max_message_bytes < TEN_MB


def test_decode_refuses_an_oversized_message_before_reading_it() -> None:
    raw = ten_megabytes("t-1")
    with pytest.raises(PayloadError, match="max_message_bytes") as caught:
        wire.decode(raw, max_bytes=len(raw) - 1)
    assert caught.value.reason == "payload_invalid"
    assert wire.decode(raw, max_bytes=len(raw)).args == ["x" * TEN_MB]
    peeked = wire.peek(raw)
    assert peeked is not None
    assert (peeked.id, peeked.task, peeked.queue, peeked.args) == ("t-1", "basic.fail",
                                                                   "default", [])


@pytest.mark.parametrize("raw", [b"\x80 not json", b"[1, 2]", b'{"headers": {"task": "x"}}',
                                 b'{"headers": {"id": "1", "task": 7}}'])
def test_peek_finds_nothing_without_a_task_and_an_id(raw: bytes) -> None:
    assert wire.peek(raw) is None


def test_dlq_show_prints_an_error_with_brackets_whole() -> None:
    """Rich would take "[...]" in an error for markup and drop it."""
    from rich.console import Console

    from relier.observability.render import dlq_entry, dlq_table

    entry = dead_letter.DeadLetter(task_id="t-1", task="t", queue="q", reason="payload_invalid",
                                   error="bad [bold]x[/bold] [a version 1 payload]",
                                   failed_at=0, message={})
    console = Console(width=200, record=True)
    dlq_entry(entry, console)
    dlq_table([entry], console)
    assert console.export_text().count("bad [bold]x[/bold] [a version 1 payload]") == 2
