"""Arguments checked against a task's signature and type hints, on both sides of Redis.

The producer turns arguments into JSON-ready values and checks that the worker will be
able to turn them back into the annotated types (dataclasses, msgspec Structs,
TypedDicts, enums, datetimes, UUIDs...). The worker does that conversion before the call.
A mismatch names the argument and is never retried: the payload itself is wrong.
"""

from __future__ import annotations

import hashlib
import inspect
import reprlib
from collections.abc import Callable
from typing import Any, get_type_hints

import msgspec

from relier.errors import ArgumentError
from relier.options import did_you_mean


class ArgumentSpec:
    """How to bind, check and convert the arguments of one task function."""

    def __init__(self, fn: Callable[..., Any], task_name: str) -> None:
        self.task_name = task_name
        self.signature = inspect.signature(fn)
        try:
            hints = get_type_hints(fn)
        except Exception:  # unresolvable forward references: validate arity only
            hints = {}
        self.return_type: Any = hints.pop("return", Any)
        self.hints: dict[str, Any] = {
            name: hint
            for name, hint in hints.items()
            if name in self.signature.parameters and hint is not Any
        }
        params = list(self.signature.parameters.values())
        #: The parameter names, in order, when every one is a plain positional-or-keyword
        #: parameter (no ``*args``, ``**kwargs``, positional- or keyword-only ones): then
        #: the worker binds a call without ``inspect`` (:meth:`_bind_plain`). None: it
        #: binds through ``Signature.bind``, which costs several µs per call.
        self._plain: tuple[str, ...] | None = tuple(p.name for p in params) if all(
            p.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD for p in params) else None
        self._places = {name: i for i, name in enumerate(self._plain or ())}
        #: How many leading parameters have no default (all of them must be given).
        self._required = next((i for i, p in enumerate(params)
                               if p.default is not inspect.Parameter.empty), len(params))

    def _bind(self, args: tuple[Any, ...] | list[Any], kwargs: dict[str, Any]) -> Any:
        try:
            return self.signature.bind(*args, **kwargs)
        except TypeError as exc:
            strays = self._strays(kwargs)
            text = "" if strays and "unexpected keyword" in str(exc) else f"; {exc}"
            raise ArgumentError(f"{self.task_name}(){text}{strays}".replace("(); ", "(): ", 1)) \
                from None

    def _strays(self, kwargs: dict[str, Any]) -> str:
        """Keyword arguments the function does not take, each with a "did you mean"."""
        params = self.signature.parameters
        if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
            return ""
        named = [n for n, p in params.items() if p.kind is not inspect.Parameter.VAR_POSITIONAL]
        strays = [name for name in kwargs if name not in params]
        return "".join(f"; unexpected keyword argument {name!r}{did_you_mean(name, named)}"
                       for name in strays)

    def _kinds(self, bound: inspect.BoundArguments) -> Any:
        for name, value in bound.arguments.items():
            kind = self.signature.parameters[name].kind
            yield name, value, kind

    def to_wire(
        self, args: tuple[Any, ...] | list[Any], kwargs: dict[str, Any]
    ) -> tuple[list[Any], dict[str, Any]]:
        """Check a call on the producer side and return its JSON-ready args and kwargs."""
        bound = self._bind(args, kwargs)
        for name, value, kind in self._kinds(bound):
            hint = self.hints.get(name)
            if hint is None:
                continue
            values = _variadic_values(value, kind)
            for item in values:
                self._check(name, item, hint)
        try:
            wire_args = msgspec.to_builtins(list(args))
            wire_kwargs = msgspec.to_builtins(kwargs)
        except (TypeError, msgspec.EncodeError) as exc:
            raise ArgumentError(
                f"{self.task_name}(): arguments are not JSON-serialisable: {exc}") from None
        return wire_args, wire_kwargs

    def fingerprint(self, wire_args: list[Any], wire_kwargs: dict[str, Any]) -> str:
        """A stable hash of one call, the default idempotency key.

        The arguments are bound to the signature with defaults applied, so ``f(1, b=2)``,
        ``f(a=1, b=2)`` and ``f(1, 2)`` are one call, and keyword order does not matter.
        """
        bound = self._bind(wire_args, wire_kwargs)
        bound.apply_defaults()
        canonical = msgspec.json.encode(
            [self.task_name, msgspec.to_builtins(dict(bound.arguments))], order="sorted"
        )
        return hashlib.sha256(canonical).hexdigest()

    def _check(self, name: str, value: Any, hint: Any) -> None:
        try:
            msgspec.convert(msgspec.to_builtins(value), hint, strict=True)
        except (msgspec.ValidationError, TypeError, msgspec.EncodeError) as exc:
            raise ArgumentError(self._mismatch(name, exc, value)) from None

    def _mismatch(self, name: str, exc: Exception, value: Any) -> str:
        # msgspec says where inside the value it failed as `$.field`; say `name.field`.
        where = str(exc).replace("`$", f"`{name}")
        return f"{self.task_name}(): argument {name!r}: {where} (got {_short_repr(value)})"

    def from_wire(
        self, args: list[Any], kwargs: dict[str, Any]
    ) -> tuple[list[Any], dict[str, Any]]:
        """Bind and convert received arguments to the annotated types, for the call."""
        plain = self._bind_plain(args, kwargs)
        if plain is not None:
            return plain
        bound = self._bind(args, kwargs)
        if self.hints:
            for name, value, kind in self._kinds(bound):
                hint = self.hints.get(name)
                if hint is None:
                    continue
                bound.arguments[name] = self._convert(name, value, kind, hint)
        return list(bound.args), dict(bound.kwargs)

    def _bind_plain(
        self, args: list[Any], kwargs: dict[str, Any]
    ) -> tuple[list[Any], dict[str, Any]] | None:
        """:meth:`from_wire` for a signature of plain parameters, as ``Signature.bind``
        would bind it (what fills the parameters in order up to the first one missing is
        positional, the rest keyword); None when the call does not bind (too many
        arguments, an unknown, repeated or missing one): the slow path then says why."""
        names = self._plain
        given = len(args)
        if names is None or given > len(names):
            return None
        places = self._places
        for name in kwargs:
            if places.get(name, -1) < given:
                return None
        for name in names[given:self._required]:
            if name not in kwargs:
                return None
        out_args, out_kwargs = list(args), {}
        for name in names[given:]:
            if name not in kwargs:
                break
            out_args.append(kwargs[name])
        if len(out_args) - given < len(kwargs):
            out_kwargs = {n: kwargs[n] for n in names[len(out_args):] if n in kwargs}
        for name, hint in self.hints.items():
            i = places[name]
            if i < len(out_args):
                out_args[i] = self._convert(name, out_args[i], _PLAIN, hint)
            elif name in out_kwargs:
                out_kwargs[name] = self._convert(name, out_kwargs[name], _PLAIN, hint)
        return out_args, out_kwargs

    def _convert(self, name: str, value: Any, kind: Any, hint: Any) -> Any:
        try:
            if kind is inspect.Parameter.VAR_POSITIONAL:
                return tuple(msgspec.convert(v, hint, strict=True) for v in value)
            if kind is inspect.Parameter.VAR_KEYWORD:
                return {k: msgspec.convert(v, hint, strict=True) for k, v in value.items()}
            return msgspec.convert(value, hint, strict=True)
        except msgspec.ValidationError as exc:
            raise ArgumentError(self._mismatch(name, exc, value)) from None


_PLAIN = inspect.Parameter.POSITIONAL_OR_KEYWORD


def _variadic_values(value: Any, kind: Any) -> list[Any]:
    if kind is inspect.Parameter.VAR_POSITIONAL:
        return list(value)
    if kind is inspect.Parameter.VAR_KEYWORD:
        return list(value.values())
    return [value]


def _short_reprs() -> reprlib.Repr:
    # reprlib cuts strings and containers before building the text, so a multi-megabyte
    # argument never becomes a multi-megabyte error, log line or DLQ entry.
    short = reprlib.Repr()
    short.maxstring = short.maxother = 80
    short.maxlist = short.maxtuple = short.maxdict = short.maxset = 8
    short.maxlevel = 4
    return short


_short_repr = _short_reprs().repr
