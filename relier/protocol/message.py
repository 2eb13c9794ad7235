"""The Celery task message (protocol v2, with v1 read too), as bytes on a Redis list.

A message is one JSON object: ``body`` (base64 of ``[args, kwargs, embed]``),
``content-type``, ``content-encoding``, ``headers`` and ``properties``. Headers and
properties are kept as plain dicts so that anything a producer put there (custom
headers, stamps, kombu's ``redelivered``) survives a decode/encode round trip; the
fields Relier acts on are lifted into :class:`TaskMessage`.

Relier's own facts travel in headers prefixed ``relier_``, which Celery ignores.
This module imports neither redis nor anyio.
"""

from __future__ import annotations

import base64
import binascii
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

import msgspec

from relier.errors import PayloadError
from relier.protocol import hostile
from relier.protocol.keys import REQUEUE_QUEUE

JSON_CONTENT_TYPE: Final = "application/json"
DEFAULT_EMBED: Final[dict[str, Any]] = {
    "callbacks": None,
    "errbacks": None,
    "chain": None,
    "chord": None,
}

#: Header names Relier adds. Celery reads headers with ``.get`` and ignores these.
VERSION_HEADER: Final = "relier_version"
IDEMPOTENCY_HEADER: Final = "relier_idempotency_key"
IDEMPOTENCY_TTL_HEADER: Final = "relier_idempotency_ttl"
RESURRECTIONS_HEADER: Final = "relier_resurrections"
ORIGIN_QUEUE_HEADER: Final = "relier_origin_queue"
FIRST_DEFERRED_HEADER: Final = "relier_first_deferred_at"
#: Unix time the producer sent the message (for the age of a queue's oldest message).
SENT_AT_HEADER: Final = "relier_sent_at"
#: On a periodic run: the schedule's name and the tick (ms since the epoch) it is for.
SCHEDULE_HEADER: Final = "relier_schedule"
TICK_HEADER: Final = "relier_tick"
#: How many times `relier dlq replay` has given this message another life.
REPLAYS_HEADER: Final = "relier_replays"


class Envelope(msgspec.Struct, kw_only=True):
    """The outer JSON object, fields in the order kombu writes them."""

    body: str
    content_encoding: str = msgspec.field(default="utf-8", name="content-encoding")
    content_type: str = msgspec.field(name="content-type")
    headers: dict[str, Any] = msgspec.field(default_factory=dict)
    properties: dict[str, Any] = msgspec.field(default_factory=dict)


class _Head(msgspec.Struct):
    """Only the small parts of an envelope; the body is skipped (checked, never copied)."""

    headers: dict[str, Any] = msgspec.field(default_factory=dict)
    properties: dict[str, Any] = msgspec.field(default_factory=dict)


_envelope_decoder: Final = msgspec.json.Decoder(Envelope)
_head_decoder: Final = msgspec.json.Decoder(_Head)
_json_encoder: Final = msgspec.json.Encoder()
_any_decoder: Final = msgspec.json.Decoder()


@dataclass(slots=True)
class TaskMessage:
    """One task message: what to run, and everything the envelope said about it."""

    id: str
    task: str
    args: list[Any]
    kwargs: dict[str, Any]
    queue: str
    embed: dict[str, Any] = field(default_factory=lambda: dict(DEFAULT_EMBED))
    priority: int | None = None
    retries: int = 0
    eta: datetime | None = None
    expires: datetime | None = None
    hard_timeout: float | None = None
    soft_timeout: float | None = None
    root_id: str | None = None
    parent_id: str | None = None
    group: str | None = None
    group_index: int | None = None
    ignore_result: bool | None = None
    protocol: int = 2
    #: Every header as received (or to be sent), including ones Relier does not know.
    headers: dict[str, Any] = field(default_factory=dict)
    #: Every property as received (or to be sent).
    properties: dict[str, Any] = field(default_factory=dict)

    @property
    def version(self) -> int:
        """The payload version the producer stamped; a Celery message counts as 1."""
        value = self.headers.get(VERSION_HEADER, 1)
        return value if isinstance(value, int) and not isinstance(value, bool) else 1

    @property
    def idempotency_key(self) -> str | None:
        value = self.headers.get(IDEMPOTENCY_HEADER)
        return value if isinstance(value, str) else None

    @property
    def idempotency_ttl(self) -> int:
        """Seconds the producer asked the idempotency record to be kept."""
        value = self.headers.get(IDEMPOTENCY_TTL_HEADER, 0)
        return value if isinstance(value, int) and not isinstance(value, bool) else 0

    @property
    def resurrections(self) -> int:
        value = self.headers.get(RESURRECTIONS_HEADER, 0)
        return value if isinstance(value, int) else 0

    @property
    def replays(self) -> int:
        """How many times `relier dlq replay` has enqueued this message again."""
        value = self.headers.get(REPLAYS_HEADER, 0)
        return value if type(value) is int else 0

    @property
    def origin_queue(self) -> str:
        """The queue this task belongs to, even after it travelled through ``re-queue``."""
        value = self.headers.get(ORIGIN_QUEUE_HEADER)
        return value if isinstance(value, str) and value else self.queue


def new_task_id() -> str:
    """A task id in the form Celery uses (a uuid4 string)."""
    return str(uuid.uuid4())


def aware(moment: datetime) -> datetime:
    """The same moment with an offset; a naive time is taken as UTC, as on decode."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def format_time(moment: datetime) -> str:
    """ISO-8601 with an explicit offset, as Celery writes ``eta``/``expires``."""
    return aware(moment).isoformat()


def _parse_time(value: Any, name: str) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise PayloadError("payload_invalid", f"header {name!r} is not an ISO-8601 string")
    try:
        moment = datetime.fromisoformat(value)
    except ValueError as exc:
        raise PayloadError("payload_invalid", f"header {name!r}: {exc}") from exc
    # A naive time is read as UTC: Relier workers have no local timezone to assume.
    return aware(moment)


def _parse_timelimit(value: Any) -> tuple[float | None, float | None]:
    """Celery's ``timelimit`` header is ``[hard, soft]`` (its docs say the reverse)."""
    if not isinstance(value, list | tuple) or len(value) != 2:
        return None, None
    hard, soft = value
    return (
        float(hard) if isinstance(hard, int | float) and hard > 0 else None,
        float(soft) if isinstance(soft, int | float) and soft > 0 else None,
    )


def _optional_str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _optional_int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _decode_payload(envelope: Envelope) -> Any:
    encoding = envelope.properties.get("body_encoding")
    if encoding == "base64":
        try:
            payload = base64.b64decode(envelope.body, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise PayloadError("payload_invalid", "body is not valid base64") from exc
    elif encoding is None:
        payload = envelope.body.encode()
    else:
        raise PayloadError("payload_invalid", f"unsupported body_encoding {encoding!r}")
    return hostile.read(_any_decoder.decode, payload, "body")


def decode(raw: bytes | str, *, max_bytes: int | None = None) -> TaskMessage:
    """Decode a message taken from a queue list.

    Raises :class:`PayloadError` with reason ``not_json`` when the bytes or the body
    are not JSON (pickle, YAML, msgpack, garbage) and ``payload_invalid`` when they
    are JSON but not a task message Relier can run, or longer than ``max_bytes`` (checked
    first, so an oversized message is never copied into Python objects).
    """
    if max_bytes is not None and len(raw) > max_bytes:
        raise PayloadError(
            "payload_invalid",
            f"message is {len(raw):,} bytes, over the limit of {max_bytes:,} "
            "(setting max_message_bytes); not decoded",
        )
    envelope = hostile.read(_envelope_decoder.decode, raw, "message")
    if envelope.content_type != JSON_CONTENT_TYPE:
        # Pickle is never accepted: decoding it would run code chosen by whoever can write
        # to the broker.
        raise PayloadError("not_json", f"content-type {envelope.content_type!r} is not JSON")
    payload = _decode_payload(envelope)
    try:
        if "task" in envelope.headers:
            return _from_v2(envelope, payload)
        return _from_v1(envelope, payload)
    except hostile.DECODE_ERRORS as exc:  # a header of a shape no check foresaw
        raise PayloadError("payload_invalid", f"{type(exc).__name__}: {exc}") from exc


def peek(raw: bytes | str) -> TaskMessage | None:
    """What the headers of a message that :func:`decode` refused still say about it.

    The message has no arguments; it names the task and its id so that a dead-letter
    entry can say which task it was and its caller can be told. ``None`` when the
    envelope is not JSON or its headers name no task and id (protocol v1 keeps them in
    the body, which is not read here). The body is skipped, so this is cheap even for a
    message far over ``max_bytes``.
    """
    head = hostile.read_or_none(_head_decoder.decode, raw)
    if head is None and isinstance(raw, bytes) and not hostile.is_utf8(raw):
        # Invalid UTF-8 in some string: the rest may still name the task and its id.
        head = hostile.read_or_none(_head_decoder.decode, raw.decode("utf-8", "replace"))
    if head is None:
        return None
    task, task_id = head.headers.get("task"), head.headers.get("id")
    if not (isinstance(task, str) and task and isinstance(task_id, str) and task_id):
        return None
    return TaskMessage(
        id=task_id,
        task=task,
        args=[],
        kwargs={},
        queue=_routing_key(head.properties),
        retries=_optional_int(head.headers.get("retries")) or 0,
        headers=head.headers,
        properties=head.properties,
    )


def home_queue(taken_from: str, headers: dict[str, Any]) -> str:
    """The queue a message belongs to: the list it was taken from, except for ``re-queue``,
    where Phoenix put it, naming its own queue in ``relier_origin_queue``.

    ``delivery_info`` is not trusted for this: a producer may name another queue there, or
    none, and what goes wrong with the message must land where its queue's users look.
    """
    if taken_from != REQUEUE_QUEUE:
        return taken_from
    origin = headers.get(ORIGIN_QUEUE_HEADER)
    return origin if isinstance(origin, str) and origin else taken_from


def _routing_key(properties: dict[str, Any]) -> str:
    info = properties.get("delivery_info")
    if isinstance(info, dict) and isinstance(info.get("routing_key"), str):
        return str(info["routing_key"])
    return ""


def _check_call(args: Any, kwargs: Any) -> tuple[list[Any], dict[str, Any]]:
    if not isinstance(args, list):
        raise PayloadError("payload_invalid", "args is not a list")
    if not isinstance(kwargs, dict):
        raise PayloadError("payload_invalid", "kwargs is not an object")
    return args, kwargs


def _from_v2(envelope: Envelope, payload: Any) -> TaskMessage:
    headers = envelope.headers
    if not isinstance(payload, list) or len(payload) != 3:
        raise PayloadError("payload_invalid", "body is not a 3-element [args, kwargs, embed]")
    args, kwargs = _check_call(payload[0], payload[1])
    embed = payload[2] if isinstance(payload[2], dict) else dict(DEFAULT_EMBED)
    task, task_id = headers.get("task"), headers.get("id")
    if not isinstance(task, str) or not task:
        raise PayloadError("payload_invalid", "header 'task' is missing or not a string")
    if not isinstance(task_id, str) or not task_id:
        raise PayloadError("payload_invalid", "header 'id' is missing or not a string")
    hard, soft = _parse_timelimit(headers.get("timelimit"))
    retries = _optional_int(headers.get("retries"))
    return TaskMessage(
        id=task_id,
        task=task,
        args=args,
        kwargs=kwargs,
        embed=embed,
        queue=_routing_key(envelope.properties),
        priority=_optional_int(envelope.properties.get("priority")),
        retries=retries or 0,
        eta=_parse_time(headers.get("eta"), "eta"),
        expires=_parse_time(headers.get("expires"), "expires"),
        hard_timeout=hard,
        soft_timeout=soft,
        root_id=_optional_str(headers.get("root_id")),
        parent_id=_optional_str(headers.get("parent_id")),
        group=_optional_str(headers.get("group")),
        group_index=_optional_int(headers.get("group_index")),
        ignore_result=headers.get("ignore_result") if isinstance(
            headers.get("ignore_result"), bool) else None,
        protocol=2,
        headers=headers,
        properties=envelope.properties,
    )


def _from_v1(envelope: Envelope, payload: Any) -> TaskMessage:
    """Protocol v1: ``headers`` is empty and the body is one object naming the task."""
    if not isinstance(payload, dict):
        raise PayloadError("payload_invalid", "no 'task' header and the body is not a v1 object")
    task, task_id = payload.get("task"), payload.get("id")
    if not isinstance(task, str) or not task:
        raise PayloadError("payload_invalid", "v1 body has no 'task'")
    if not isinstance(task_id, str) or not task_id:
        raise PayloadError("payload_invalid", "v1 body has no 'id'")
    args, kwargs = _check_call(payload.get("args", []), payload.get("kwargs", {}))
    hard, soft = _parse_timelimit(payload.get("timelimit"))
    embed = dict(DEFAULT_EMBED)
    embed["callbacks"] = payload.get("callbacks")
    embed["errbacks"] = payload.get("errbacks")
    embed["chord"] = payload.get("chord")
    return TaskMessage(
        id=task_id,
        task=task,
        args=args,
        kwargs=kwargs,
        embed=embed,
        queue=_routing_key(envelope.properties),
        priority=_optional_int(envelope.properties.get("priority")),
        retries=_optional_int(payload.get("retries")) or 0,
        eta=_parse_time(payload.get("eta"), "eta"),
        expires=_parse_time(payload.get("expires"), "expires"),
        hard_timeout=hard,
        soft_timeout=soft,
        root_id=task_id,
        group=_optional_str(payload.get("taskset")) or _optional_str(payload.get("group")),
        group_index=_optional_int(payload.get("group_index")),
        protocol=1,
        headers=dict(envelope.headers),
        properties=envelope.properties,
    )


def _short_repr(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 1024 else text[:1021] + "..."


def build(
    task: str,
    args: list[Any] | tuple[Any, ...],
    kwargs: dict[str, Any],
    *,
    queue: str,
    task_id: str | None = None,
    priority: int | None = None,
    eta: datetime | None = None,
    expires: datetime | None = None,
    hard_timeout: float | None = None,
    soft_timeout: float | None = None,
    ignore_result: bool = False,
    origin: str = "relier",
    extra_headers: dict[str, Any] | None = None,
) -> TaskMessage:
    """A new message with the full header set a Celery 5.7 producer writes.

    A naive ``eta``/``expires`` is taken as UTC, the way :func:`decode` reads one.
    """
    task_id = task_id or new_task_id()
    # Normalise first: the TTL below subtracts an aware "now", which fails on a naive time.
    eta = aware(eta) if eta is not None else None
    expires = aware(expires) if expires is not None else None
    headers: dict[str, Any] = {
        "lang": "py",
        "task": task,
        "id": task_id,
        "shadow": None,
        "eta": format_time(eta) if eta else None,
        "expires": format_time(expires) if expires else None,
        "group": None,
        "group_index": None,
        "retries": 0,
        "timelimit": [hard_timeout, soft_timeout],
        "root_id": task_id,
        "parent_id": None,
        "argsrepr": _short_repr(tuple(args)),
        "kwargsrepr": _short_repr(kwargs),
        "origin": origin,
        "ignore_result": ignore_result,
        "replaced_task_nesting": 0,
        "stamped_headers": None,
        "stamps": {},
    }
    if extra_headers:
        headers.update(extra_headers)
    properties: dict[str, Any] = {
        "correlation_id": task_id,
        "reply_to": "",
        "delivery_mode": 2,
        "delivery_info": {"exchange": "", "routing_key": queue},
        "priority": priority or 0,
        "body_encoding": "base64",
        "delivery_tag": str(uuid.uuid4()),
    }
    if expires is not None:
        # kombu also writes the AMQP TTL as a string of milliseconds; Redis ignores it.
        remaining_ms = (expires - datetime.now(UTC)).total_seconds() * 1000
        properties["expiration"] = str(max(0, int(remaining_ms)))
    return TaskMessage(
        id=task_id,
        task=task,
        args=list(args),
        kwargs=kwargs,
        queue=queue,
        priority=priority,
        eta=eta,
        expires=expires,
        hard_timeout=hard_timeout,
        soft_timeout=soft_timeout,
        root_id=task_id,
        ignore_result=ignore_result,
        headers=headers,
        properties=properties,
    )


def _v1_headers(message: TaskMessage) -> dict[str, Any]:
    """The v2 headers for facts a v1 message carried in its body (its headers are empty)."""
    return {
        "lang": "py",
        "task": message.task,
        "id": message.id,
        "group": message.group,
        "group_index": message.group_index,
        "timelimit": [message.hard_timeout, message.soft_timeout],
        "root_id": message.root_id or message.id,
        "parent_id": message.parent_id,
    }


def encode(message: TaskMessage) -> bytes:
    """The bytes to LPUSH: a protocol v2 envelope (a v1 message is written as v2)."""
    headers = dict(message.headers)
    if message.protocol == 1 or "task" not in headers:
        headers.update(_v1_headers(message))
    # Scheduling may change these, so the fields win over the headers that arrived.
    headers["retries"] = message.retries
    headers["eta"] = format_time(message.eta) if message.eta else None
    headers["expires"] = format_time(message.expires) if message.expires else None
    body = _json_encoder.encode([message.args, message.kwargs, message.embed])
    # The body is always written as base64, so say so: a message that arrived with a raw
    # body has no ``body_encoding``, and without it the base64 text would be read as JSON.
    properties = {**message.properties, "body_encoding": "base64"}
    envelope = Envelope(
        body=base64.b64encode(body).decode("ascii"),
        content_type=JSON_CONTENT_TYPE,
        headers=headers,
        properties=properties,
    )
    return _json_encoder.encode(envelope)


def redelivered(message: TaskMessage) -> None:
    """Mark a message as redelivered, as kombu's restore path does."""
    message.headers["redelivered"] = True
    info = message.properties.get("delivery_info")
    if isinstance(info, dict):
        info["redelivered"] = True


def now_utc() -> datetime:
    return datetime.now(UTC)


def decode_json(raw: bytes | str) -> Any:
    """Plain JSON decode with the shared decoder (raw UTF-8 or ASCII-escaped)."""
    return _any_decoder.decode(raw)


def encode_json(value: Any) -> bytes:
    """Plain JSON encode with the shared encoder (raw UTF-8 output)."""
    return _json_encoder.encode(value)
