"""Terminal rendering of Relier's state with rich tables."""

from __future__ import annotations

import time
from collections.abc import Sequence

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from relier.protocol.dead_letter import DeadLetter


def _age(moment: float) -> str:
    seconds = max(0.0, time.time() - moment)
    if seconds < 120:
        return f"{seconds:.0f}s ago"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m ago"
    return f"{seconds / 3600:.1f}h ago"


def dlq_table(entries: Sequence[DeadLetter], console: Console | None = None) -> None:
    console = console or Console()
    if not entries:
        console.print("the DLQ is empty")
        return
    table = Table(title=f"dead letters ({len(entries)})", title_justify="left")
    table.add_column("task id", no_wrap=True)
    for column in ("task", "queue", "reason", "tries", "deaths", "when"):
        table.add_column(column, no_wrap=True)
    table.add_column("error", overflow="ellipsis", no_wrap=True, ratio=1)
    for e in entries:
        table.add_row(e.task_id or "-", e.task or "-", e.queue, e.reason, str(e.attempts),
                      str(e.resurrections), _age(e.failed_at), escape(e.error[:80]))
    console.print(table)


def dlq_entry(entry: DeadLetter, console: Console | None = None) -> None:
    console = console or Console()
    for field in ("task_id", "task", "queue", "reason", "error", "attempts", "resurrections",
                  "worker"):
        # Escaped: an error may hold "[...]", which rich would take for markup and drop.
        console.print(f"[bold]{field}[/bold]: {escape(str(getattr(entry, field)))}")
    console.print(f"[bold]failed_at[/bold]: {_age(entry.failed_at)}")
    if entry.elapsed is not None:
        console.print(f"[bold]elapsed[/bold]: {entry.elapsed:.3f}s")
    if entry.traceback:
        console.print("[bold]traceback[/bold]:")
        console.print(entry.traceback, markup=False, highlight=False)
