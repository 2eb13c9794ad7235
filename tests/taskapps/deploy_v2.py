"""The "new release" of the deploy tests' tasks (see deploy_v1), with typed arguments.

- ``deploy.greet`` v2 takes a ``Person`` and a ``Greeting``; an upgrader splits v1's name.
- ``deploy.note`` v2 gained arguments with defaults: v1 payloads fit without an upgrader.
- ``deploy.charge`` v2 takes ``Money`` instead of an int, and (the bug deploy_v2_fixed
  fixes) has no upgrader, so a v1 payload does not fit.
- ``deploy.launch`` is new: a v1 worker does not know the name.
"""

from __future__ import annotations

import dataclasses
import enum
from datetime import datetime
from typing import Any, TypedDict

import msgspec

from relier import App, current_task

app = App()

#: The same list as deploy_v1.RUNS (a release does not import the other one).
RUNS = "test:deploy:runs"


@dataclasses.dataclass
class Person:
    first: str
    last: str


class Greeting(enum.Enum):
    HELLO = "hello"
    HI = "hi"


class Money(msgspec.Struct):
    cents: int
    currency: str


class LaunchPlan(TypedDict):
    rocket: str
    at: datetime


async def record(release: str) -> None:
    ctx = current_task()
    await app.broker().client.rpush(RUNS, f"{release} {ctx.name} {ctx.id}")


@app.task(name="deploy.greet", version=2)
async def greet(person: Person, greeting: Greeting = Greeting.HELLO) -> str:
    assert isinstance(person, Person) and isinstance(greeting, Greeting)
    await record("v2")
    return f"v2 {greeting.value} {person.first} {person.last}"


@greet.upgrade(from_version=1)
def split_name(args: list[Any], kwargs: dict[str, Any]) -> tuple[list[Any], dict[str, Any]]:
    """v1 was ``greet(name)``: "Ada Lovelace" becomes Person("Ada", "Lovelace")."""
    name = kwargs.pop("name") if "name" in kwargs else args.pop(0)
    first, _, last = name.partition(" ")
    return [Person(first, last), *args], kwargs


@app.task(name="deploy.note", version=2)
async def note(order_id: str, note: str = "none", at: datetime | None = None) -> dict[str, str]:
    await record("v2")
    return {"order": order_id, "note": note, "at": at.isoformat() if at else "never"}


@app.task(name="deploy.charge", version=2)
async def charge(amount: Money) -> str:
    assert isinstance(amount, Money)
    await record("v2")
    return f"{amount.cents} {amount.currency}"


@app.task(name="deploy.launch")
async def launch(plan: LaunchPlan) -> str:
    await record("v2")
    return f"{plan['rocket']} at {plan['at'].year}"
