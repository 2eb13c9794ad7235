"""The version rules on their own (no Redis): validation of typed arguments, the upgrader
chain, payloads too new, and the deferral schedule. tests/test_rolling_deploys.py runs
the same rules through real workers."""

from __future__ import annotations

import dataclasses
import enum
import re
from datetime import UTC, date, datetime
from typing import Any, TypedDict

import msgspec
import pytest

from relier import App
from relier.errors import ArgumentError, ConfigurationError, PayloadError
from relier.protocol import message as wire
from relier.runtime import versioning
from relier.runtime.versioning import Call, TooNew
from relier.task import Task


@dataclasses.dataclass
class Address:
    city: str
    zip_code: int


class Money(msgspec.Struct):
    cents: int
    currency: str = "EUR"


class Options(TypedDict):
    express: bool


class Color(enum.Enum):
    RED = "red"


class Level(enum.IntEnum):
    LOW = 1


app = App()


@app.task(name="v.typed")
async def typed(address: Address, money: Money, options: Options, color: Color, level: Level,
                when: datetime, day: date, tags: list[str]) -> None: ...


def message_for(task: Task[Any, Any], args: list[Any], kwargs: dict[str, Any] | None = None,
                version: int | None = None) -> wire.TaskMessage:
    headers = {wire.VERSION_HEADER: version} if version is not None else {}
    return wire.build(task.name, args, kwargs or {}, queue="q", extra_headers=headers)


TYPED_ARGS = [Address("Oslo", 150), Money(500), {"express": True}, Color.RED, Level.LOW,
              datetime(2030, 1, 2, 3, 4, tzinfo=UTC), date(2030, 1, 2), ["a"]]


def test_typed_arguments_come_back_as_their_types() -> None:
    wire_args, _ = typed.arguments.to_wire(tuple(TYPED_ARGS), {})
    call = versioning.prepare(typed, message_for(typed, wire_args))
    assert call == Call(TYPED_ARGS, {})


@pytest.mark.parametrize(("position", "bad", "named"), [
    (0, {"city": "Oslo", "zip_code": "150"}, "argument 'address': Expected `int`, got `str`"
                                             " - at `address.zip_code`"),
    (1, {"cents": 5.5}, "argument 'money': Expected `int`, got `float` - at `money.cents`"),
    (2, {"express": 1}, "argument 'options': Expected `bool`, got `int` - at `options.express`"),
    (3, "blue", "argument 'color': Invalid enum value 'blue'"),
    (4, 7, "argument 'level': Invalid enum value 7"),
    (5, "next tuesday", "argument 'when': Invalid RFC3339 encoded datetime"),
    (6, "2030-02-30", "argument 'day': Invalid RFC3339 encoded date"),
    (7, ["a", 2], "argument 'tags': Expected `str`, got `int` - at `tags[1]`"),
])
def test_a_mismatch_names_the_argument_and_the_field(position: int, bad: Any, named: str) -> None:
    wire_args, _ = typed.arguments.to_wire(tuple(TYPED_ARGS), {})
    wire_args[position] = bad
    with pytest.raises(ArgumentError, match=r"v\.typed") as caught:
        versioning.prepare(typed, message_for(typed, wire_args))
    assert named in str(caught.value)
    assert caught.value.reason == "payload_invalid"


def test_a_huge_bad_value_is_not_quoted_whole() -> None:
    wire_args, _ = typed.arguments.to_wire(tuple(TYPED_ARGS), {})
    wire_args[7] = [1] * 1_000_000
    with pytest.raises(ArgumentError) as caught:
        versioning.prepare(typed, message_for(typed, wire_args))
    assert len(str(caught.value)) < 400


# --- versions ---------------------------------------------------------------------------


def chain_app() -> tuple[Task[Any, Any], list[int]]:
    """v3 of a task: v1 greet(name), v2 greet(first, last), v3 greet(person: dict)."""
    local = App()
    steps: list[int] = []

    @local.task(name="v.greet", version=3)
    async def greet(person: dict[str, str], loud: bool = False) -> None: ...

    @greet.upgrade(from_version=1)
    def split(args: list[Any], kwargs: dict[str, Any]) -> tuple[list[Any], dict[str, Any]]:
        steps.append(1)
        first, _, last = args.pop(0).partition(" ")
        args.extend([first, last])  # in place: the message must not change
        return args, kwargs

    @greet.upgrade(from_version=2)
    def merge(args: list[Any], kwargs: dict[str, Any]) -> tuple[list[Any], dict[str, Any]]:
        steps.append(2)
        return [{"first": args[0], "last": args[1]}], kwargs

    return greet, steps


def test_upgraders_run_in_order_from_the_payload_version() -> None:
    greet, steps = chain_app()
    v1 = message_for(greet, ["Ada Lovelace"], version=1)
    assert versioning.prepare(greet, v1) == Call(
        [{"first": "Ada", "last": "Lovelace"}], {}, upgraded_from=1)
    assert steps == [1, 2]
    assert v1.args == ["Ada Lovelace"]
    steps.clear()
    v2 = message_for(greet, ["Grace", "Hopper"], {"loud": True}, version=2)
    # (Bound as the signature binds them: keyword arguments come back positional.)
    assert versioning.prepare(greet, v2) == Call(
        [{"first": "Grace", "last": "Hopper"}, True], {}, upgraded_from=2)
    assert steps == [2]
    steps.clear()
    v3 = message_for(greet, [{"first": "A", "last": "B"}], version=3)
    assert versioning.prepare(greet, v3) == Call([{"first": "A", "last": "B"}], {})
    assert steps == []


def test_a_message_without_a_version_is_version_1() -> None:
    greet, _ = chain_app()
    celery_sent = message_for(greet, ["Alan Turing"])
    assert wire.VERSION_HEADER not in celery_sent.headers
    assert versioning.payload_version(celery_sent) == 1
    assert versioning.prepare(greet, celery_sent) == Call(
        [{"first": "Alan", "last": "Turing"}], {}, upgraded_from=1)


def test_a_newer_payload_is_too_new() -> None:
    greet, steps = chain_app()
    assert versioning.prepare(greet, message_for(greet, [], version=4)) == TooNew(4, 3)
    assert steps == []


@pytest.mark.parametrize("value", [0, -1, "2", 2.0, True, [2]])
def test_a_malformed_version_header_is_invalid(value: Any) -> None:
    greet, _ = chain_app()
    with pytest.raises(PayloadError, match="relier_version") as caught:
        versioning.prepare(greet, message_for(greet, [], version=value))
    assert caught.value.reason == "payload_invalid"


def test_a_missing_upgrader_passes_arguments_through() -> None:
    local = App()

    @local.task(name="v.note", version=3)
    async def note(order_id: str, note: str = "none") -> None: ...

    @note.upgrade(from_version=2)
    def add_note(args: list[Any], kwargs: dict[str, Any]) -> tuple[list[Any], dict[str, Any]]:
        return args, {**kwargs, "note": "from v2"}

    assert versioning.prepare(note, message_for(note, ["o-1"], version=1)) == Call(
        ["o-1", "from v2"], {}, upgraded_from=1)


def test_an_incompatible_old_payload_says_so() -> None:
    local = App()

    @local.task(name="v.charge", version=2)
    async def charge(amount: Money) -> None: ...

    with pytest.raises(ArgumentError) as caught:
        versioning.prepare(charge, message_for(charge, [500], version=1))
    assert "argument 'amount'" in str(caught.value)
    assert "a version 1 payload, with no upgrader, for version 2" in str(caught.value)


def test_an_upgrader_may_return_typed_values() -> None:
    local = App()

    @local.task(name="v.move", version=2)
    async def move(to: Address, at: datetime) -> None: ...

    @move.upgrade(from_version=1)
    def typed_values(args: list[Any], kwargs: dict[str, Any]) -> tuple[list[Any], dict[str, Any]]:
        return [Address(args[0], 1), datetime(2030, 1, 1, tzinfo=UTC)], {}

    assert versioning.prepare(move, message_for(move, ["Oslo"], version=1)) == Call(
        [Address("Oslo", 1), datetime(2030, 1, 1, tzinfo=UTC)], {}, upgraded_from=1)


@pytest.mark.parametrize(("returned", "error"), [
    (None, "returned NoneType; expected (args, kwargs)"),
    ((["a"],), "returned tuple; expected (args, kwargs)"),
    (({}, []), "returned tuple; expected (args, kwargs)"),
    (([object()], {}), "not JSON-serialisable"),
])
def test_an_upgrader_returning_nonsense_is_invalid(returned: Any, error: str) -> None:
    local = App()

    @local.task(name="v.bad", version=2)
    async def bad(x: Any) -> None: ...

    bad.upgrade(from_version=1)(lambda args, kwargs: returned)
    with pytest.raises(PayloadError, match=re.escape(error)):
        versioning.prepare(bad, message_for(bad, [1], version=1))


def test_an_upgrader_that_raises_is_invalid_with_its_cause() -> None:
    greet, _ = chain_app()
    with pytest.raises(PayloadError, match=r"upgrader .*split \(version 1 to 2\) raised "
                                           r"IndexError") as caught:
        versioning.prepare(greet, message_for(greet, [], version=1))
    assert isinstance(caught.value.__cause__, IndexError)
    assert caught.value.reason == "payload_invalid"


def test_upgraders_and_versions_are_checked_when_declared() -> None:
    local = App()
    with pytest.raises(ConfigurationError, match="version must be an int >= 1"):
        local.task(name="v.zero", version=0)(lambda: None)

    @local.task(name="v.two", version=2)
    def two() -> None: ...

    for wrong in (0, 2, 3):
        with pytest.raises(ConfigurationError, match="versions 1 to 1"):
            two.upgrade(from_version=wrong)
    two.upgrade(from_version=1)(lambda args, kwargs: (args, kwargs))
    with pytest.raises(ConfigurationError, match="already has an upgrader from version 1"):
        two.upgrade(from_version=1)


# --- deferral -----------------------------------------------------------------------------


def test_deferrals_back_off_and_end_at_the_window() -> None:
    msg = wire.build("v.new", [], {}, queue="q")
    now, pauses = 1000.0, []
    while (deferral := versioning.next_attempt(msg, now, window=120)).due is not None:
        pauses.append(deferral.due - now)
        now = deferral.due
    assert pauses == [1, 2, 4, 8, 16, 30, 30, 29]
    assert deferral.waited == 120
    assert msg.headers[wire.FIRST_DEFERRED_HEADER] == 1000.0
    assert msg.headers[versioning.DEFERRALS_HEADER] == 8
