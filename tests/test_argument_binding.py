"""The worker's argument binding: a task of plain parameters is bound without
``inspect.Signature.bind`` (validation.py), and must bind every call exactly as it would:
the same positional and keyword split, the same conversions, and the same refusals."""

from __future__ import annotations

import dataclasses
import inspect
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from relier.errors import ArgumentError
from relier.validation import ArgumentSpec


@dataclasses.dataclass
class Point:
    x: int
    y: int


def plain(a: int, b: Point, c: str = "c", d: Any = None, e: list[int] | None = None) -> None:
    """Plain parameters, some typed, some with defaults."""


def variadic(a: int, *rest: int, flag: bool = False, **more: str) -> None:
    """Not plain: bound by ``Signature.bind``."""


def _reference(fn: Any, spec: ArgumentSpec, args: list[Any],
               kwargs: dict[str, Any]) -> tuple[list[Any], dict[str, Any]]:
    """What the slow path (``Signature.bind``) makes of a call."""
    bound = spec._bind(args, kwargs)
    for name, value, kind in spec._kinds(bound):
        if name in spec.hints:
            bound.arguments[name] = spec._convert(name, value, kind, spec.hints[name])
    return list(bound.args), dict(bound.kwargs)


_NAMES = ("a", "b", "c", "d", "e", "zz")
_VALUES = st.sampled_from([1, "s", None, {"x": 1, "y": 2}, {"x": "no"}, [1, 2], 2.5])


@settings(max_examples=400, deadline=None)
@given(args=st.lists(_VALUES, max_size=6),
       kwargs=st.dictionaries(st.sampled_from(_NAMES), _VALUES, max_size=4))
def test_plain_binding_matches_signature_bind(args: list[Any], kwargs: dict[str, Any]) -> None:
    spec = ArgumentSpec(plain, "t.plain")
    try:
        expected: Any = _reference(plain, spec, args, kwargs)
    except ArgumentError as exc:
        expected = ArgumentError, str(exc)
    try:
        got: Any = spec.from_wire(args, kwargs)
    except ArgumentError as exc:
        got = ArgumentError, str(exc)
    assert got == expected


def test_a_plain_signature_never_calls_signature_bind(monkeypatch: pytest.MonkeyPatch) -> None:
    spec = ArgumentSpec(plain, "t.plain")
    monkeypatch.setattr(inspect.Signature, "bind", lambda *a, **k: pytest.fail("bound"))
    # c is not given, so d stays a keyword (as Signature.bind leaves it).
    assert spec.from_wire([1, {"x": 1, "y": 2}], {"d": 4}) == ([1, Point(1, 2)], {"d": 4})
    assert spec.from_wire([1, {"x": 1, "y": 2}, "x"], {"d": 4}) == (
        [1, Point(1, 2), "x", 4], {})
    assert spec.from_wire([1], {"b": {"x": 0, "y": 0}, "e": [3]}) == (
        [1, Point(0, 0)], {"e": [3]})


def test_other_signatures_still_bind_through_inspect() -> None:
    spec = ArgumentSpec(variadic, "t.variadic")
    assert spec.from_wire([1, 2, 3], {"flag": True, "x": "y"}) == (
        [1, 2, 3], {"flag": True, "x": "y"})
    with pytest.raises(ArgumentError, match="rest"):
        spec.from_wire([1, "two"], {})
