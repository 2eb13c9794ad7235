"""Help text in the conventions a Celery (or any Unix) user reads at a glance.

The Typer release Relier is built with labels every flag ``<bool>`` (``--events <bool>``
reads as if it took a value) and writes a required argument as ``{queue}`` in the usage
line. Here flags get no type label and arguments are written ``QUEUE``. Both hooks are
looked up defensively: with a Typer that lacks them, help is simply left as it is.
"""

from __future__ import annotations

from typing import Any


def use_conventional_help() -> None:
    """Patch Typer's help rendering once (idempotent)."""
    try:
        from typer import core
    except ImportError:  # pragma: no cover - typer is a dependency
        return
    option, argument = getattr(core, "TyperOption", None), getattr(core, "TyperArgument", None)
    if option is not None and hasattr(option, "display_type_rich") \
            and not getattr(option, "_relier_help", False):
        _hide_flag_types(option)
    if argument is not None and hasattr(argument, "_usage_display_name") \
            and not getattr(argument, "_relier_help", False):
        _plain_argument_names(argument)


def _hide_flag_types(option: Any) -> None:
    shown = option.display_type_rich

    def display_type_rich(self: Any, ctx: Any) -> str | None:
        return None if getattr(self, "is_flag", False) else shown(self, ctx)

    option.display_type_rich = display_type_rich
    option._relier_help = True


def _plain_argument_names(argument: Any) -> None:
    def usage_name(self: Any) -> str:
        name = str(self.metavar or self.name).upper()
        name = name if self.required else f"[{name}]"
        return name + ("..." if self.nargs != 1 else "")

    argument._usage_display_name = usage_name
    argument._relier_help = True
