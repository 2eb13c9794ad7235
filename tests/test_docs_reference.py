"""The Reference pages are generated from the code (docs/_hooks/reference.py), and the
site builds with --strict: a command, option or setting cannot go undocumented."""

from __future__ import annotations

import dataclasses
import importlib.util
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest
import typer.main

from relier.cli import cli
from relier.settings import Settings
from tests.conftest import ROOT


def load_hook() -> ModuleType:
    spec = importlib.util.spec_from_file_location("reference_hook",
                                                  ROOT / "docs" / "_hooks" / "reference.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def command_paths(command: object, path: str) -> list[str]:
    found = [path]
    for name, sub in getattr(command, "commands", {}).items():
        found += command_paths(sub, f"{path} {name}")
    return found


def test_every_command_and_option_is_in_the_cli_reference() -> None:
    text = load_hook().cli_reference()
    for path in command_paths(typer.main.get_command(cli), "relier")[1:]:
        assert f"`{path}`" in text, path
    for option in ("--metrics-port", "--processes", "--host", "--keep-server", "--reason"):
        assert option in text, option


def test_every_setting_is_in_the_settings_reference_with_its_comment() -> None:
    text = load_hook().settings_reference()
    for f in dataclasses.fields(Settings):
        assert f"`RELIER_{f.name.upper()}`" in text, f.name
    assert "Seconds after the last heartbeat that a worker counts as dead." in text


def test_markers_are_replaced_and_optional_pages_join_the_nav(tmp_path: Path) -> None:
    hook = load_hook()
    page = hook.on_page_markdown("# CLI\n\n<!-- generated: cli -->\n", None, None, None)
    assert "## `relier worker`" in page and "generated" not in page
    (tmp_path / "guarantees.md").write_text("# Guarantees\n")
    nav = [{"Home": "index.md"}, {"Reference": ["reference/cli.md"]}]
    hook.on_config({"docs_dir": str(tmp_path), "nav": nav})
    assert nav == [{"Home": "index.md"}, {"Guarantees": "guarantees.md"},
                   {"Reference": ["reference/cli.md"]}]


def test_site_builds_strict(tmp_path: Path) -> None:
    why = "the docs extra is not installed (pip install -e '.[docs]')"
    pytest.importorskip("mkdocs", reason=why)
    pytest.importorskip("material", reason=why)
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir",
                           str(tmp_path / "site")], cwd=ROOT, capture_output=True, text=True,
                          timeout=300, env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    assert done.returncode == 0, done.stderr
