"""Reading the docs' code blocks and the directives that say how to run them.

A directive is an HTML comment (invisible on the site) just before a fenced block, or
standing alone:

- ``<!-- doc-test: run [expect="text"] [timeout=N] [pid-of=NAME] -->``: run the block
  (``python`` or ``sh``) and wait; it must exit 0 and print ``expect`` if given.
  ``pid-of`` replaces ``<pid>`` in the block with the pid of a started block.
- ``<!-- doc-test: start name=NAME [ready="text"] -->``: run the block in the
  background (a worker, a web server) and wait until it prints ``ready``.
- ``<!-- doc-test: wait name=NAME for="text" [timeout=N] -->`` (alone): wait until a
  started block prints ``text``; with ``exit=0``, wait for it to exit 0 instead.
- ``cwd=repo`` on ``run``/``start``: run from the root of the checkout (the page says so).
- ``<!-- doc-test: skip reason="..." -->``: not run, for a stated reason (installs).
- ``<!-- doc-test: fragment -->``: a piece of code shown in context, not a program.

A fenced block with ``title="name.py"`` is a file the reader saves: it is written into
the page's working directory before any step runs (unless it only includes a file of the
repository with ``--8<--``; those run from the checkout).
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

FENCE = re.compile(r"^(?P<indent> *)(?P<fence>`{3,})(?P<info>.*)$")
DIRECTIVE = re.compile(r"^\s*<!--\s*doc-test:\s*(?P<body>.*?)\s*-->\s*$")
TITLE = re.compile(r'title="(?P<title>[^"]+)"')
KINDS = {"run", "start", "wait", "skip", "fragment"}
#: Languages a step can run.
RUNNABLE = {"python", "sh", "bash"}


@dataclass
class Directive:
    kind: str
    options: dict[str, str] = field(default_factory=dict)


@dataclass
class Block:
    """One fenced block, or a standalone directive (``lang`` empty)."""

    page: str
    line: int
    lang: str = ""
    title: str | None = None
    code: str = ""
    directive: Directive | None = None

    @property
    def is_snippet(self) -> bool:
        """A repository file pulled in whole (``--8<-- "path"``): shown, not saved."""
        return self.code.lstrip().startswith("--8<--")

    @property
    def where(self) -> str:
        return f"{self.page}:{self.line}"


def parse_directive(body: str, where: str) -> Directive:
    kind, *rest = shlex.split(body)
    if kind not in KINDS:
        raise ValueError(f"{where}: unknown doc-test directive {kind!r}")
    options = {}
    for item in rest:
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"{where}: expected key=value in doc-test directive, got {item!r}")
        options[key] = value
    return Directive(kind, options)


def read_blocks(path: Path, page: str) -> list[Block]:
    """Every fenced block and standalone directive of a page, in order."""
    lines = path.read_text().splitlines()
    blocks: list[Block] = []
    pending: Directive | None = None
    i = 0
    while i < len(lines):
        line = lines[i]
        directive, fence = DIRECTIVE.match(line), FENCE.match(line)
        if directive:
            if pending is not None:  # a directive followed by another: it stands alone
                blocks.append(Block(page, i, directive=pending))
            pending = parse_directive(directive.group("body"), f"{page}:{i + 1}")
        elif fence:
            block, i = _fenced(lines, i, fence, page)
            block.directive, pending = pending, None
            blocks.append(block)
        elif line.strip() and pending is not None:
            blocks.append(Block(page, i, directive=pending))
            pending = None
        i += 1
    if pending is not None:
        blocks.append(Block(page, len(lines), directive=pending))
    return blocks


def _fenced(lines: list[str], start: int, fence: re.Match[str], page: str) -> tuple[Block, int]:
    indent, marker = len(fence.group("indent")), fence.group("fence")
    info = fence.group("info").strip()
    body: list[str] = []
    i = start + 1
    while i < len(lines) and lines[i].strip() != marker:
        body.append(lines[i][indent:] if lines[i][:indent].strip() == "" else lines[i])
        i += 1
    title = TITLE.search(info)
    lang = info.split()[0] if info else ""
    return Block(page, start + 1, lang=lang, title=title.group("title") if title else None,
                 code="\n".join(body) + "\n"), i
