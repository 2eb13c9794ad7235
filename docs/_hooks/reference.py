"""MkDocs hook: the Reference pages are generated from the code at every build.

``<!-- generated: cli -->`` becomes every ``relier`` command with its options, read from
the typer app; ``<!-- generated: settings -->`` becomes every field of
``relier.settings.Settings`` with its type, default, environment variable and the
``#:`` comment above it. So neither page can drift from the code. The hook also puts
Guarantees and Benchmarks in the nav when their pages exist.
"""

from __future__ import annotations

import dataclasses
import inspect
import re
from pathlib import Path
from typing import Any

MARKER = re.compile(r"<!--\s*generated:\s*(\w+)\s*-->")
#: Pages others write; listed in the nav only once they exist (never as stubs).
OPTIONAL_PAGES = {"guarantees.md": "Guarantees", "benchmarks.md": "Benchmarks"}


def cli_reference() -> str:
    """Markdown for every command of ``relier``, depth first, in the app's order."""
    import typer.main

    from relier.cli import cli

    root = typer.main.get_command(cli)
    return "\n".join(_command_sections(root, "relier", None))


def _command_sections(command: Any, path: str, parent: Any) -> list[str]:
    ctx = command.context_class(command, info_name=path.rsplit(" ", 1)[-1], parent=parent)
    sections = [] if parent is None else [_command_section(command, path, ctx)]
    for name, sub in getattr(command, "commands", {}).items():
        if not getattr(sub, "hidden", False):
            sections += _command_sections(sub, f"{path} {name}", ctx)
    return sections


def _command_section(command: Any, path: str, ctx: Any) -> str:
    text = inspect.cleandoc(command.help or "")
    usage = " ".join([path, *command.collect_usage_pieces(ctx)])
    lines = [f"## `{path}`", "", text, "", f"```text\n{usage}\n```", ""]
    records = [p.get_help_record(ctx) for p in command.params if not getattr(p, "hidden", False)]
    arguments = [p for p in command.params if p.param_type_name == "argument"]
    if arguments:
        lines += ["Arguments: " + ", ".join(f"`{a.name.upper()}`" for a in arguments), ""]
    options = [r for r in records if r]
    if options:
        lines += ["| option | meaning |", "|---|---|"]
        lines += [f"| `{_cell(opts)}` | {_cell(help_text)} |" for opts, help_text in options]
        lines.append("")
    return "\n".join(lines)


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def settings_reference() -> str:
    """Markdown table of every setting: name, environment variable, type, default, meaning."""
    from relier.settings import ENV_PREFIX, Settings

    notes = _field_comments(inspect.getsource(Settings))
    rows = ["| setting | environment variable | type | default | meaning |",
            "|---|---|---|---|---|"]
    for f in dataclasses.fields(Settings):
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
        rows.append(f"| `{f.name}` | `{ENV_PREFIX}{f.name.upper()}` | `{_cell(str(f.type))}` "
                    f"| `{default!r}` | {_cell(notes.get(f.name, ''))} |")
    return "\n".join(rows) + "\n"


def _field_comments(source: str) -> dict[str, str]:
    """The ``#:`` comment lines just above each field of a dataclass's source."""
    notes: dict[str, str] = {}
    pending: list[str] = []
    for line in source.splitlines():
        stripped = line.strip()
        if stripped.startswith("#:"):
            pending.append(stripped[2:].strip())
            continue
        field = re.match(r"(\w+)\s*:", stripped)
        if field and pending:
            notes[field.group(1)] = " ".join(pending)
        pending = []
    return notes


GENERATORS = {"cli": cli_reference, "settings": settings_reference}


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    """Replace each ``<!-- generated: NAME -->`` marker with its generated Markdown."""
    return MARKER.sub(lambda m: GENERATORS[m.group(1)](), markdown)


def on_config(config: Any) -> Any:
    """Add Guarantees and Benchmarks to the nav, before Reference, once their pages exist."""
    docs = Path(config["docs_dir"])
    nav = config["nav"]
    titles = {next(iter(item)) for item in nav if isinstance(item, dict)}
    at = next((i for i, item in enumerate(nav)
               if isinstance(item, dict) and "Reference" in item), len(nav))
    for page, title in OPTIONAL_PAGES.items():
        if (docs / page).exists() and title not in titles:
            nav.insert(at, {title: page})
            at += 1
    return config
