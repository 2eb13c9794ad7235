"""Celery's remote control ("pidbox") on the wire: requests in, replies out. No I/O.

A client (``celery inspect ping``, ``app.control.revoke(...)``, Flower) PUBLISHes a kombu
envelope on the fanout channel ``/<db>.celery.pidbox``; its base64 JSON body is
``{"method", "arguments", "destination", "pattern", "matcher", "ticket", "reply_to"}``
and its headers carry ``expires`` (unix time). A worker that answers LPUSHes a kombu
envelope whose body is ``{<worker hostname>: <reply>}`` (headers ``ticket``, ``clock``)
to the client's reply queue ``<oid>.reply.celery.pidbox`` (vectors ``g_pidbox_*``).

Every byte read here comes from the network: :func:`parse_request` validates each field
and raises :class:`BadControlMessage` with a one-line reason instead of guessing.
"""

from __future__ import annotations

import base64
import binascii
import fnmatch
import re
import uuid
from dataclasses import dataclass
from typing import Any, Final

import msgspec

EXCHANGE: Final = "celery.pidbox"
REPLY_EXCHANGE: Final = "reply.celery.pidbox"

_encoder: Final = msgspec.json.Encoder()
_decoder: Final = msgspec.json.Decoder()


class BadControlMessage(ValueError):
    """A pidbox message that is not a well-formed control request."""


@dataclass(frozen=True, slots=True)
class ReplyTo:
    """Where the client waits: kombu's direct exchange and the client's routing key."""

    exchange: str
    routing_key: str


@dataclass(frozen=True, slots=True)
class ControlRequest:
    """One remote-control command, validated."""

    method: str
    arguments: dict[str, Any]
    ticket: str | None
    reply_to: ReplyTo | None
    destination: list[str] | None = None
    pattern: str | None = None
    matcher: str | None = None
    expires: float | None = None
    #: The client's Lamport clock (kombu's ``clock`` header), 0 when absent.
    clock: int = 0

    def addressed_to(self, hostname: str) -> bool:
        """Whether this worker should act: no destination means every worker."""
        if self.destination is not None:
            return hostname in self.destination
        if self.pattern is not None:
            return _matches(self.pattern, self.matcher, hostname)
        return True

    def expired(self, now: float) -> bool:
        return self.expires is not None and self.expires < now


def _matches(pattern: str, matcher: str | None, hostname: str) -> bool:
    """kombu's matchers: ``glob`` (default) and ``pcre``."""
    if matcher in (None, "glob"):
        return fnmatch.fnmatchcase(hostname, pattern)
    if matcher == "pcre":
        try:
            return re.search(pattern, hostname) is not None
        except re.error:
            return False
    return False


def _field(body: dict[str, Any], name: str, kind: type | tuple[type, ...]) -> Any:
    value = body.get(name)
    if value is not None and not isinstance(value, kind):
        raise BadControlMessage(f"field {name!r} is {type(value).__name__}, "
                                f"not {getattr(kind, '__name__', kind)}")
    return value


def _reply_to(value: Any) -> ReplyTo | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise BadControlMessage("reply_to is not an object")
    exchange, key = value.get("exchange"), value.get("routing_key")
    if not isinstance(exchange, str) or not isinstance(key, str) or not key:
        raise BadControlMessage("reply_to needs string exchange and routing_key")
    return ReplyTo(exchange, key)


def _body(envelope: dict[str, Any]) -> dict[str, Any]:
    body = envelope.get("body")
    if not isinstance(body, str):
        raise BadControlMessage("the envelope has no string body")
    if envelope.get("content-type", "application/json") != "application/json":
        raise BadControlMessage(f"content-type {envelope.get('content-type')!r} is not JSON")
    properties = envelope.get("properties")
    encoding = properties.get("body_encoding") if isinstance(properties, dict) else None
    try:
        text = base64.b64decode(body, validate=True) if encoding == "base64" else body
        decoded = _decoder.decode(text)
    except (binascii.Error, ValueError, msgspec.DecodeError) as exc:
        raise BadControlMessage(f"undecodable body: {exc}") from None
    if not isinstance(decoded, dict):
        raise BadControlMessage("the body is not a JSON object")
    return decoded


def parse_request(raw: bytes) -> ControlRequest:
    """A control request from one published envelope; :class:`BadControlMessage` if not."""
    try:
        envelope = _decoder.decode(raw)
    except msgspec.DecodeError as exc:
        raise BadControlMessage(f"not JSON: {exc}") from None
    if not isinstance(envelope, dict):
        raise BadControlMessage("the envelope is not a JSON object")
    body = _body(envelope)
    method = _field(body, "method", str)
    if not method:
        raise BadControlMessage("no method")
    destination = _field(body, "destination", list)
    if destination is not None and not all(isinstance(d, str) for d in destination):
        raise BadControlMessage("destination holds a non-string")
    headers = envelope.get("headers")
    headers = headers if isinstance(headers, dict) else {}
    expires, clock = headers.get("expires"), headers.get("clock")
    return ControlRequest(
        method=method,
        arguments=_field(body, "arguments", dict) or {},
        ticket=_field(body, "ticket", str),
        reply_to=_reply_to(body.get("reply_to")),
        destination=destination,
        pattern=_field(body, "pattern", str),
        matcher=_field(body, "matcher", str),
        expires=float(expires) if isinstance(expires, int | float) else None,
        clock=clock if isinstance(clock, int) and not isinstance(clock, bool) else 0,
    )


def _envelope(payload: Any, headers: dict[str, Any], exchange: str, routing_key: str,
              delivery_mode: int) -> bytes:
    return _encoder.encode({
        "body": base64.b64encode(_encoder.encode(payload)).decode("ascii"),
        "content-encoding": "utf-8",
        "content-type": "application/json",
        "headers": headers,
        "properties": {
            "delivery_mode": delivery_mode,
            "delivery_info": {"exchange": exchange, "routing_key": routing_key},
            "priority": 0,
            "body_encoding": "base64",
            "delivery_tag": str(uuid.uuid4()),
        },
    })


def reply(hostname: str, answer: Any, request: ControlRequest, clock: int) -> bytes:
    """The envelope a worker LPUSHes to the client's reply queue."""
    assert request.reply_to is not None
    return _envelope({hostname: answer}, {"ticket": request.ticket, "clock": clock},
                     REPLY_EXCHANGE, request.reply_to.routing_key, delivery_mode=1)


def request(method: str, arguments: dict[str, Any], expires: float, clock: int) -> bytes:
    """A broadcast with no reply expected (``relier revoke`` sends one), as kombu sends it."""
    body = {"method": method, "arguments": arguments, "destination": None, "pattern": None,
            "matcher": None}
    return _envelope(body, {"clock": clock, "expires": expires}, EXCHANGE, "",
                     delivery_mode=2)


def ok(text: str) -> dict[str, str]:
    """Celery's success reply."""
    return {"ok": text}


def error(text: str) -> dict[str, str]:
    """Celery's error reply (``celery inspect`` prints it for this worker)."""
    return {"error": text}
