"""Finding the user's App from ``-A``, ``RELIER_APP`` or ``[tool.relier]`` in pyproject.toml.

``-A myproject.tasks`` imports the module (its ``@rl_task`` decorators register with the
default App); ``-A myproject.tasks:app`` uses the App object named there. Several
modules can be given, comma-separated.
"""

from __future__ import annotations

import importlib
import os
import sys
import tomllib
from pathlib import Path

from relier.app import App
from relier.errors import ConfigurationError


def _from_pyproject(start: Path) -> str | None:
    for folder in (start, *start.parents):
        candidate = folder / "pyproject.toml"
        if candidate.is_file():
            try:
                config = tomllib.loads(candidate.read_text(encoding="utf-8"))
            except (OSError, tomllib.TOMLDecodeError):
                return None
            value = config.get("tool", {}).get("relier", {}).get("app")
            return value if isinstance(value, str) else None
    return None


def resolve_target(target: str | None) -> str | None:
    """The ``-A`` value, else ``RELIER_APP``, else ``[tool.relier] app``."""
    return target or os.environ.get("RELIER_APP") or _from_pyproject(Path.cwd())


def load_app(target: str | None) -> App:
    """Import the task modules named by ``target`` and return the App they use."""
    from relier.tasks import app as default_app

    target = resolve_target(target)
    if not target:
        return default_app
    # Like `python -m`, let modules in the current directory be found.
    if "" not in sys.path and os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    chosen: App | None = None
    for item in filter(None, (part.strip() for part in target.split(","))):
        module_name, _, attribute = item.partition(":")
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            raise ConfigurationError(f"cannot import {module_name!r} (from -A {item}): {exc}") \
                from None
        if attribute:
            found = getattr(module, attribute, None)
            if not isinstance(found, App):
                raise ConfigurationError(f"{item!r} does not name a relier.App")
            chosen = found
    return chosen or default_app
