"""Hypothesis strategies for malformed task messages of every shape, and good ones to
interleave with them (used by tests/test_fuzz_payloads.py and benchmarks/fuzz.py).

Every malformed message must end in the DLQ with a reason; every good one must run.
The worker they are pushed to runs ``tests.taskapps.basic:app`` with a short
``defer_window`` (unknown tasks reach the DLQ quickly) and ``max_message_bytes`` of
:data:`MAX_BYTES`.
"""

from __future__ import annotations

import base64
import json
import uuid
from dataclasses import dataclass
from typing import Any

from hypothesis import strategies as st

from relier.protocol import message as wire

QUEUE = "default"
#: The worker's max_message_bytes in these runs.
MAX_BYTES = 64 * 1024
#: The worker's environment for these runs.
WORKER_ENV = {"RELIER_DEFER_WINDOW": "0.3", "RELIER_MAX_MESSAGE_BYTES": str(MAX_BYTES)}


@dataclass(frozen=True)
class Case:
    """One message to LPUSH: its bytes, its shape, and what the outcome must be."""

    raw: bytes
    shape: str
    #: The id its DLQ entry must name (None: its headers cannot be read).
    task_id: str | None = None
    #: For a good message: the result its task must return.
    expected: Any = None


def _new_id() -> str:
    return str(uuid.uuid4())


def _envelope(task: str = "basic.add", args: list[Any] | None = None,
              task_id: str | None = None) -> dict[str, Any]:
    message = wire.build(task, [1, 2] if args is None else args, {}, queue=QUEUE,
                         task_id=task_id or _new_id())
    envelope: dict[str, Any] = json.loads(wire.encode(message))
    return envelope


def _dump(envelope: Any) -> bytes:
    return json.dumps(envelope, ensure_ascii=False).encode("utf-8", "surrogatepass")


def _b64(value: Any) -> str:
    return base64.b64encode(json.dumps(value).encode()).decode()


#: JSON values of any shape (small), for wrong types and bodies.
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                max_size=4),
    max_leaves=10,
)
#: Text with the odd parts of unicode: controls, NUL, combining marks, RTL, astral planes.
odd_text = st.text(st.characters(blacklist_categories=["Cs"]), min_size=1, max_size=30)


@st.composite
def bad_base64(draw: st.DrawFn) -> Case:
    task_id = _new_id()
    envelope = _envelope(task_id=task_id)
    envelope["body"] = draw(st.sampled_from(["!!!", "abc", "====", "A"])) + draw(
        st.text("!@#$%^&*", max_size=10))
    return Case(_dump(envelope), "bad base64", task_id)


@st.composite
def body_not_a_call(draw: st.DrawFn) -> Case:
    task_id = _new_id()
    envelope = _envelope(task_id=task_id)
    body = draw(json_values.filter(lambda v: not (isinstance(v, list) and len(v) == 3)))
    envelope["body"] = _b64(body)
    return Case(_dump(envelope), "body not [args, kwargs, embed]", task_id)


@st.composite
def wrong_header_types(draw: st.DrawFn) -> Case:
    task_id = _new_id()
    envelope = _envelope(task_id=task_id)
    header = draw(st.sampled_from(["task", "id", "eta", "expires"]))
    if header in ("eta", "expires"):
        value = draw(json_values.filter(lambda v: v is not None and not isinstance(v, str))
                     | st.sampled_from(["not a time", "2026-13-45"]))
    else:
        value = draw(json_values.filter(lambda v: not isinstance(v, str) or v == ""))
    envelope["headers"][header] = value
    named = task_id if header in ("eta", "expires") else None
    return Case(_dump(envelope), f"wrong type for header {header}", named)


@st.composite
def wrong_envelope_types(draw: st.DrawFn) -> Case:
    envelope = _envelope()
    field = draw(st.sampled_from(["headers", "properties", "body", "content-type"]))
    envelope[field] = draw(json_values.filter(
        lambda v: not isinstance(v, dict if field in ("headers", "properties") else str)))
    return Case(_dump(envelope), f"wrong type for {field}")


@st.composite
def missing_id_or_task(draw: st.DrawFn) -> Case:
    envelope = _envelope()
    for header in draw(st.sampled_from([["id"], ["task"], ["id", "task"]])):
        del envelope["headers"][header]
    return Case(_dump(envelope), "missing id or task")


@st.composite
def not_json(draw: st.DrawFn) -> Case:
    raw = draw(st.sampled_from([b"", b"{", b"nope", b"\x80\x04\x95", b"{'a': 1}"])) + draw(
        st.binary(max_size=40))
    return Case(raw, "not JSON")


@st.composite
def invalid_utf8(draw: st.DrawFn) -> Case:
    task_id = _new_id()
    envelope = _envelope(task_id=task_id)
    envelope["headers"]["argsrepr"] = "MARK"
    bad = draw(st.sampled_from([b"\xff", b"\xc3\x28", b"\xe9", b"\xed\xa0\x80", b"\xf8\x88"]))
    return Case(_dump(envelope).replace(b'"MARK"', b'"' + bad + b'"'), "invalid UTF-8", task_id)


@st.composite
def pickle_content(draw: st.DrawFn) -> Case:
    task_id = _new_id()
    envelope = _envelope(task_id=task_id)
    envelope["content-type"] = draw(st.sampled_from(
        ["application/x-python-serialize", "application/x-yaml", "application/x-msgpack"]))
    envelope["body"] = base64.b64encode(b"\x80\x04\x95" + draw(st.binary(max_size=20))).decode()
    return Case(_dump(envelope), "pickle content type", task_id)


@st.composite
def oversized(draw: st.DrawFn) -> Case:
    task_id = _new_id()
    size = draw(st.integers(MAX_BYTES + 1, MAX_BYTES * 3))
    return Case(_dump(_envelope(args=["x" * size, 1], task_id=task_id)), "over max bytes",
                task_id)


@st.composite
def deep_nesting(draw: st.DrawFn) -> Case:
    # Past Python's recursion limit (1000): no decoder can build it.
    depth = draw(st.integers(1_200, 20_000))
    nest = "[" * depth + "]" * depth
    where = draw(st.sampled_from(["body", "headers", "envelope", "object"]))
    task_id = _new_id()
    if where == "envelope":
        return Case(nest.encode(), "deep envelope")
    if where == "object":
        return Case(('{"x":' * depth + "1" + "}" * depth).encode(), "deep object envelope")
    envelope = _envelope(task_id=task_id)
    if where == "body":
        envelope["body"] = base64.b64encode(f"[{nest}, {{}}, {{}}]".encode()).decode()
        return Case(_dump(envelope), "deep body", task_id)
    envelope["headers"]["lang"] = "DEEP"
    return Case(_dump(envelope).replace(b'"DEEP"', nest.encode()), "deep headers")


@st.composite
def unknown_task(draw: st.DrawFn) -> Case:
    task_id = _new_id()
    name = draw(odd_text | st.sampled_from(["basic.nope", "celery.chord_unlock"]))
    return Case(_dump(_envelope(task=name, task_id=task_id)), "unknown task", task_id)


@st.composite
def args_misfit(draw: st.DrawFn) -> Case:
    task_id = _new_id()
    args = draw(st.lists(json_values, max_size=4).filter(
        lambda a: not (len(a) == 2 and all(type(v) is int for v in a))))
    return Case(_dump(_envelope(args=args, task_id=task_id)), "arguments misfit", task_id)


@st.composite
def random_bytes(draw: st.DrawFn) -> Case:
    return Case(draw(st.binary(max_size=200)), "random bytes")


malformed = st.one_of(
    bad_base64(), body_not_a_call(), wrong_header_types(), wrong_envelope_types(),
    missing_id_or_task(), not_json(), invalid_utf8(), pickle_content(), oversized(),
    deep_nesting(), unknown_task(), args_misfit(), random_bytes(),
)


@st.composite
def good(draw: st.DrawFn) -> Case:
    """basic.add with any ints, or basic.record_start echoing odd unicode back."""
    task_id = _new_id()
    if draw(st.booleans()):
        x, y = draw(st.integers(-2**62, 2**62)), draw(st.integers(-2**62, 2**62))
        message = wire.build("basic.add", [x, y], {}, queue=QUEUE, task_id=task_id)
        return Case(wire.encode(message), "good add", task_id, x + y)
    text = draw(odd_text)
    message = wire.build("basic.record_start", [text, 0.0], {}, queue=QUEUE, task_id=task_id)
    return Case(wire.encode(message), "good unicode echo", task_id, text)


#: One batch: malformed and good messages, interleaved in a drawn order.
batches = st.tuples(st.lists(malformed, min_size=1, max_size=4),
                    st.lists(good(), min_size=1, max_size=2)).flatmap(
    lambda pair: st.permutations(pair[0] + pair[1]))
