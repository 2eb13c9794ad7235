"""Celery's signatures, as they appear in a message's ``embed``, read and checked.

A *signature* is ``{"task", "args", "kwargs", "options", "subtask_type", "immutable"}``.
:func:`read_canvas` checks every part of an ``embed`` before the task runs, so a message
whose canvas Relier cannot honour is refused whole (:class:`CanvasUnsupported`, dead-
lettered as ``canvas_unsupported`` with the part named), never half done. Building what
follows a finished step is ``canvas.py``'s job. Pure: no redis, no anyio.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Final

from relier.errors import PayloadError
from relier.protocol import message as wire
from relier.protocol.message import TaskMessage

#: Signature options Relier carries out (see ``canvas.message_for``).
HONOURED_OPTIONS: Final = frozenset({
    "task_id", "queue", "routing_key", "priority", "countdown", "eta", "expires",
    "time_limit", "soft_time_limit", "ignore_result", "group_id", "group_index", "link",
    "link_error", "chord", "shadow", "headers", "stamped_headers", "stamps", "reply_to",
    "parent_id", "root_id",
})
#: Options that only matter to a Celery producer's own publishing, safe to leave aside.
INERT_OPTIONS: Final = frozenset({
    "retry", "retry_policy", "delivery_mode", "mandatory", "immediate", "add_to_parent",
    "producer", "connection", "publisher", "exchange_type", "declare", "chord_size",
})
#: The type each honoured scalar option must have (checked before the task runs, so a
#: follow-up never fails to build after it).
_OPTION_TYPES: Final[dict[str, type | tuple[type, ...]]] = {
    "task_id": str, "queue": str, "routing_key": str, "priority": int,
    "countdown": (int, float), "eta": (str, int, float), "expires": (str, int, float),
    "time_limit": (int, float), "soft_time_limit": (int, float), "group_id": str,
    "group_index": int, "shadow": str, "headers": dict, "reply_to": str,
}


class CanvasUnsupported(PayloadError):
    """A canvas part Relier does not honour; the message is refused before it runs."""

    def __init__(self, detail: str) -> None:
        super().__init__("canvas_unsupported", detail)


@dataclass(frozen=True, slots=True)
class Signature:
    """One task call to make later: Celery's ``signature`` (``task.s()`` / ``task.si()``).

    ``origin`` is the :class:`relier.task.Task` that made it (for the native API's push
    and handle types); it never travels.
    """

    task: str
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)
    immutable: bool = False
    origin: Any = field(default=None, compare=False, repr=False)

    def set(self, **options: Any) -> Signature:
        """A copy with these options added (``queue=``, ``task_id=``, ``countdown=``...)."""
        return replace(self, options={**self.options, **options})

    @property
    def id(self) -> str | None:
        value = self.options.get("task_id")
        return value if isinstance(value, str) else None

    def frozen(self) -> Signature:
        """A copy with a task id, so its result can be awaited before it is sent."""
        return self if self.id else self.set(task_id=wire.new_task_id())

    def to_wire(self) -> dict[str, Any]:
        """The dict Celery puts in ``embed`` (and ``options["link"]``...)."""
        options = {k: _to_wire(v) if k in ("link", "link_error", "chord") else v
                   for k, v in self.options.items()}
        return {
            "task": self.task, "args": list(self.args), "kwargs": self.kwargs,
            "options": options, "subtask_type": None, "immutable": self.immutable,
        }


def _to_wire(value: Any) -> Any:
    """Signatures nested in options (``link``, ``link_error``, ``chord``) as dicts."""
    if isinstance(value, Signature):
        return value.to_wire()
    if isinstance(value, list | tuple):
        return [_to_wire(v) for v in value]
    return value


@dataclass(frozen=True, slots=True)
class Canvas:
    """What a message's ``embed`` asks for, checked."""

    callbacks: tuple[Signature, ...] = ()
    errbacks: tuple[Signature, ...] = ()
    #: Remaining steps, reversed as on the wire (the last one runs next).
    chain: tuple[Signature, ...] = ()
    chord: Signature | None = None

    @property
    def empty(self) -> bool:
        return not (self.callbacks or self.errbacks or self.chain or self.chord)


def read_signature(value: Any, where: str) -> Signature:
    """A signature from the wire; :class:`CanvasUnsupported` names what is not honoured."""
    if not isinstance(value, dict):
        raise CanvasUnsupported(f"{where}: not a signature object")
    task, kind = value.get("task"), value.get("subtask_type")
    if kind is not None:
        raise CanvasUnsupported(f"{where}: a nested {kind!r} (only plain task signatures "
                                "are supported inside a canvas)")
    if not isinstance(task, str) or not task:
        raise CanvasUnsupported(f"{where}: signature has no task name")
    args, kwargs = value.get("args") or [], value.get("kwargs") or {}
    options = value.get("options") or {}
    if not isinstance(args, list | tuple) or not isinstance(kwargs, dict) \
            or not isinstance(options, dict):
        raise CanvasUnsupported(f"{where} ({task}): args/kwargs/options have the wrong type")
    _check_options(options, f"{where} ({task})")
    return Signature(task, tuple(args), kwargs, options, bool(value.get("immutable")))


def _check_options(options: dict[str, Any], where: str) -> None:
    unknown = sorted(set(options) - HONOURED_OPTIONS - INERT_OPTIONS - {"exchange",
                                                                          "serializer"})
    if unknown:
        raise CanvasUnsupported(f"{where}: option(s) {', '.join(unknown)} not supported")
    if options.get("exchange") not in (None, ""):
        raise CanvasUnsupported(f"{where}: named exchange {options['exchange']!r} not "
                                "supported (use queue=)")
    if options.get("serializer") not in (None, "json"):
        raise CanvasUnsupported(f"{where}: serializer {options['serializer']!r} (only json)")
    for name, kinds in _OPTION_TYPES.items():
        value = options.get(name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, kinds)):
            raise CanvasUnsupported(f"{where}: option {name}={value!r} has the wrong type")
    for name in ("eta", "expires"):
        if isinstance(options.get(name), str):
            try:
                datetime.fromisoformat(options[name])
            except ValueError:
                raise CanvasUnsupported(f"{where}: option {name}={options[name]!r} is not "
                                        "an ISO-8601 time") from None
    for name in ("link", "link_error"):
        for i, sig in enumerate(as_list(options.get(name))):
            read_signature(sig, f"{where} option {name}[{i}]")
    if options.get("chord") is not None:
        read_signature(options["chord"], f"{where} option chord")


def as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, list | tuple) else [value]


def _signatures(value: Any, where: str) -> tuple[Signature, ...]:
    if value is not None and not isinstance(value, list):
        raise CanvasUnsupported(f"embed {where} is not a list")
    return tuple(read_signature(v, f"{where}[{i}]") for i, v in enumerate(value or []))


_NO_CANVAS: Final = Canvas()


def read_canvas(message: TaskMessage) -> Canvas:
    """The canvas a message carries; raises :class:`CanvasUnsupported` for any part that
    Relier cannot carry out (checked before the task runs, so nothing is half done)."""
    embed = message.embed
    if all(v is None or v == [] for v in embed.values()):
        return _NO_CANVAS  # most messages: nothing to read (checked once per delivery)
    unknown = sorted(k for k, v in embed.items()
                     if v and k not in ("callbacks", "errbacks", "chain", "chord"))
    if unknown:
        raise CanvasUnsupported(f"embed part(s) {', '.join(unknown)} not supported")
    chord = embed.get("chord")
    return Canvas(
        callbacks=_signatures(embed.get("callbacks"), "callbacks"),
        errbacks=_signatures(embed.get("errbacks"), "errbacks"),
        chain=_signatures(embed.get("chain"), "chain"),
        chord=read_signature(chord, "chord") if chord else None,
    )
