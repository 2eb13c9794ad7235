"""Every code block the docs present as runnable runs, so the docs cannot rot.

Each page with doc-test steps runs as a reader would (tests/docs_runner.py), against this
test's private Redis (or, for the Quickstart, the server the page itself starts). On the
pages this site added, every Python and shell block must be run, skipped for a stated
reason, or marked as a fragment: nothing there looks runnable without being run.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.docs_blocks import RUNNABLE, Block, read_blocks
from tests.docs_runner import PageRunner

DOCS = ROOT / "docs"
#: The site's own pages (the others predate it and hold no runnable blocks).
STRICT = ["index.md", "quickstart.md", "concepts", "recipes", "patterns", "migrating.md",
          "troubleshooting.md", "reference"]


def pages() -> list[str]:
    return sorted(str(p.relative_to(DOCS)) for p in DOCS.rglob("*.md"))


def strict_pages() -> list[str]:
    return [p for p in pages() if any(p == s or p.startswith(s + "/") for s in STRICT)]


def blocks_of(page: str) -> list[Block]:
    return read_blocks(DOCS / page, page)


def pages_with_steps() -> list[str]:
    return [p for p in pages() if any(
        b.directive and b.directive.kind in ("run", "start") for b in blocks_of(p))]


@pytest.mark.timeout(300)
@pytest.mark.parametrize("page", pages_with_steps())
def test_page_runs_as_written(page: str, redis_url: str, tmp_path: Path) -> None:
    blocks = blocks_of(page)
    runner = PageRunner(tmp_path, redis_url, blocks)
    try:
        for block in blocks:
            if block.title and not block.is_snippet and not (
                    block.directive and block.directive.kind == "skip"):
                runner.save(block)
        for block in blocks:
            runner.step(block)
    finally:
        runner.stop_all()


@pytest.mark.parametrize("page", strict_pages())
def test_no_unrun_block_looks_runnable(page: str) -> None:
    for block in blocks_of(page):
        if block.lang not in RUNNABLE or block.title:
            continue  # a file to save (run by a later step), or a repository file shown
        assert block.directive is not None, (
            f"{block.where}: a {block.lang} block with no doc-test directive "
            "(run it, or mark it skip with a reason, or fragment)")
        if block.directive.kind == "skip":
            assert block.directive.options.get("reason"), f"{block.where}: skip needs a reason"


def test_the_site_has_pages_that_run() -> None:
    assert "quickstart.md" in pages_with_steps()
    assert len(pages_with_steps()) >= 5
