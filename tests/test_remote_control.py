"""Celery's remote control (pidbox) answered by a Relier worker.

The wire format is checked against the captured ``g_pidbox_*`` vectors; the rest runs a
real ``relier worker`` subprocess and a real Celery client (``app.control.inspect()`` and
the ``celery inspect`` command) on the session's private Redis.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
import redis
from celery import Celery

from relier.protocol import pidbox
from relier.store import keys
from tests.conftest import ROOT, StartWorker, WorkerProcess
from tests.polling import poll
from tests.taskapps.control import go_key, ran_key
from tests.taskapps.interop_celery import URL_ENV

APP = "tests.taskapps.control:app"
VECTORS = Path("/work/shared/celery-vectors")
LOCAL_VECTORS = ROOT / "tests" / "vectors"
#: Seconds a Celery inspect call waits for replies (generous: a loaded machine).
REPLY_TIMEOUT = 5.0


def _vector(name: str) -> bytes:
    for folder in (LOCAL_VECTORS, VECTORS):
        path = folder / name
        if path.exists():
            return path.read_bytes()
    pytest.skip(f"vector {name} not available")


def _body(envelope: bytes) -> Any:
    return json.loads(base64.b64decode(json.loads(envelope)["body"]))


def start_listening(start_worker: StartWorker, queue: str, *extra: str,
                    env: dict[str, str] | None = None) -> WorkerProcess:
    worker = start_worker(APP, *extra, queues=queue, env=env)
    worker.wait_for_line("remote control: listening")
    return worker


def hostname_of(worker: WorkerProcess) -> str:
    line = worker.wait_for_line("remote control: listening")
    return line.rsplit(" as ", 1)[1].strip()


# -- the wire, against Celery's own captures ---------------------------------------------


def test_parses_celerys_ping_request() -> None:
    request = pidbox.parse_request(_vector("g_pidbox_ping_publish.json"))
    assert request.method == "ping"
    assert request.arguments == {}
    assert request.ticket == "b25c68e2-98b9-4185-9fba-41ceae96d0f5"
    assert request.reply_to == pidbox.ReplyTo("reply.celery.pidbox",
                                              "a5ae5b42-0c46-3d7c-9b2a-557bbb3b7afc")
    assert request.addressed_to("relier@anything")
    assert request.expires == pytest.approx(1795523771.63, abs=0.01)
    assert request.expired(request.expires + 1)
    assert not request.expired(request.expires - 1)


def test_reply_matches_celerys_capture() -> None:
    request = pidbox.parse_request(_vector("g_pidbox_ping_publish.json"))
    ours = json.loads(pidbox.reply("w1@probe", pidbox.ok("pong"), request, 3))
    theirs = json.loads(_vector("g_pidbox_ping_reply_lpush.json"))
    assert _body(pidbox.reply("w1@probe", pidbox.ok("pong"), request, 3)) == \
        json.loads(base64.b64decode(theirs["body"]))
    assert ours["headers"] == theirs["headers"]
    for field in ("delivery_mode", "delivery_info", "priority", "body_encoding"):
        assert ours["properties"][field] == theirs["properties"][field]
    assert ours["content-type"] == theirs["content-type"]


@pytest.mark.parametrize("raw, reason", [
    (b"\xff\xfe", "not JSON"),
    (b"[1, 2]", "not a JSON object"),
    (b'{"body": 5}', "no string body"),
    (b'{"body": "!!!", "properties": {"body_encoding": "base64"}}', "undecodable body"),
    (json.dumps({"body": base64.b64encode(b'{"method": 7}').decode(),
                 "properties": {"body_encoding": "base64"}}).encode(), "'method' is int"),
    (json.dumps({"body": base64.b64encode(b'{"arguments": {}}').decode(),
                 "properties": {"body_encoding": "base64"}}).encode(), "no method"),
    (json.dumps({"body": base64.b64encode(
        b'{"method": "ping", "reply_to": {"exchange": 1}}').decode(),
        "properties": {"body_encoding": "base64"}}).encode(), "reply_to"),
    (json.dumps({"body": base64.b64encode(
        b'{"method": "ping", "destination": [1]}').decode(),
        "properties": {"body_encoding": "base64"}}).encode(), "destination"),
    (json.dumps({"body": "{}", "content-type": "application/x-python-serialize"}).encode(),
     "not JSON"),
])
def test_malformed_requests_are_refused_with_a_reason(raw: bytes, reason: str) -> None:
    with pytest.raises(pidbox.BadControlMessage, match=reason):
        pidbox.parse_request(raw)


def test_destination_and_pattern_select_workers() -> None:
    def request(**fields: Any) -> pidbox.ControlRequest:
        body = {"method": "ping", **fields}
        return pidbox.parse_request(json.dumps({
            "body": base64.b64encode(json.dumps(body).encode()).decode(),
            "properties": {"body_encoding": "base64"}}).encode())

    assert request(destination=["relier@a"]).addressed_to("relier@a")
    assert not request(destination=["celery@b"]).addressed_to("relier@a")
    assert request(pattern="relier@*").addressed_to("relier@a")
    assert not request(pattern="celery@*").addressed_to("relier@a")
    assert request(pattern="^relier@", matcher="pcre").addressed_to("relier@a")
    assert not request(pattern="(", matcher="pcre").addressed_to("relier@a")


# -- a real worker, a real Celery client -------------------------------------------------


def test_celery_inspect_lists_a_relier_worker_and_its_running_task(
    start_worker: StartWorker, celery_client: Celery, rclient: redis.Redis
) -> None:
    queue = f"ctl-{uuid.uuid4().hex[:8]}"
    worker = start_listening(start_worker, queue)
    name = hostname_of(worker)
    inspect = celery_client.control.inspect(timeout=REPLY_TIMEOUT)
    assert inspect.ping() == {name: {"ok": "pong"}}

    running = celery_client.send_task("ctl.wait", ("held",), queue=queue)
    poll(lambda: rclient.exists(ran_key(running.id)), 30, "the task to start")
    active = poll(lambda: (inspect.active() or {}).get(name), 30, "an active reply")
    assert [(t["id"], t["name"], t["delivery_info"]["routing_key"]) for t in active] == [
        (running.id, "ctl.wait", queue)]
    assert active[0]["hostname"] == name and active[0]["args"] == "('held',)"

    registered = inspect.registered()[name]
    assert "ctl.wait" in registered and registered == sorted(registered)
    assert [q["name"] for q in inspect.active_queues()[name]] == [queue]
    assert inspect.reserved() == {name: []}
    assert inspect.scheduled() == {name: []}
    stats = inspect.stats()[name]
    assert stats["pool"]["max-concurrency"] == 100
    assert stats["pid"] == worker.pid
    assert inspect.query_task(running.id)[name][running.id][0] == "active"

    rclient.set(go_key("held"), 1)
    assert running.get(timeout=30) == "done"
    assert inspect.stats()[name]["total"] == {"ctl.wait": 1}


def test_unsupported_command_gets_an_error_reply_and_one_log_line(
    start_worker: StartWorker, celery_client: Celery
) -> None:
    worker = start_listening(start_worker, f"ctl-{uuid.uuid4().hex[:8]}")
    name = hostname_of(worker)
    for _ in range(2):
        replies = celery_client.control.broadcast("pool_grow", arguments={"n": 1},
                                                  reply=True, timeout=REPLY_TIMEOUT)
        assert replies == [{name: {"error": "relier does not support the remote control "
                                           "command 'pool_grow'"}}]
    assert worker.output.count("command 'pool_grow'") == 1


def test_garbage_on_the_control_channel_does_not_stop_the_worker(
    start_worker: StartWorker, celery_client: Celery, rclient: redis.Redis, redis_url: str
) -> None:
    worker = start_listening(start_worker, f"ctl-{uuid.uuid4().hex[:8]}")
    db = int(redis_url.rsplit("/", 1)[1])
    channel = keys.pidbox_channel(db)
    for raw in (b"\x00garbage", b"[]", b'{"body": "eyJtZXRob2QiOiA1fQ==",'
                b' "properties": {"body_encoding": "base64"}}'):
        assert rclient.publish(channel, raw) == 1
    worker.wait_for_line("malformed message: field 'method' is int")
    inspect = celery_client.control.inspect(timeout=REPLY_TIMEOUT)
    assert inspect.ping() == {hostname_of(worker): {"ok": "pong"}}
    assert worker.process.poll() is None


def test_celery_inspect_command_line(start_worker: StartWorker, redis_url: str) -> None:
    worker = start_listening(start_worker, f"ctl-{uuid.uuid4().hex[:8]}")
    result = subprocess.run(
        [sys.executable, "-m", "celery", "-A", "tests.taskapps.interop_celery", "inspect",
         "ping", "--timeout", str(REPLY_TIMEOUT)],
        cwd=ROOT, env={**os.environ, URL_ENV: redis_url}, capture_output=True, text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{hostname_of(worker)}: OK" in result.stdout
    assert "pong" in result.stdout
