"""Terminal rendering of Relier's state with rich tables."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Final

from rich.console import Console, Group, RenderableType
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from relier.observability.doctor import Diagnosis
from relier.observability.inspect import (
    QueueStats,
    ResurrectedView,
    RunningView,
    Snapshot,
    WorkerView,
)
from relier.observability.whereabouts import TaskReport
from relier.protocol.dead_letter import DeadLetter


def _age(moment: float) -> str:
    seconds = max(0.0, time.time() - moment)
    if seconds < 120:
        return f"{seconds:.0f}s ago"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m ago"
    return f"{seconds / 3600:.1f}h ago"


#: Below this many columns left for the error, the DLQ is listed two lines per entry.
MIN_ERROR_WIDTH: Final = 20


def dlq_table(entries: Sequence[DeadLetter], console: Console | None = None) -> None:
    console = console or Console()
    if not entries:
        console.print("the DLQ is empty")
        return
    # What the columns before the error take (their widest cells, borders and padding).
    fixed = sum(max(len(cell) for cell in column) for column in zip(*(
        (e.task_id or "-", e.task or "-", e.queue, e.reason, "tries", "deaths", "59m ago")
        for e in entries), strict=True)) + 3 * 8 + 1
    error_width = console.width - fixed
    if error_width < MIN_ERROR_WIDTH:
        # A table would squeeze columns to nothing: two lines per entry instead.
        console.print(f"dead letters ({len(entries)})", style="bold")
        for e in entries:
            console.print(f"{escape(e.task_id or '-')}  {escape(e.task or '-')}  queue="
                          f"{escape(e.queue)}  reason={e.reason}  tries={e.attempts}  "
                          f"deaths={e.resurrections}  {_age(e.failed_at)}", overflow="fold")
            console.print(f"    {escape(e.error[:200])}", overflow="ellipsis", no_wrap=True)
        return
    table = Table(title=f"dead letters ({len(entries)})", title_justify="left")
    table.add_column("task id", no_wrap=True)
    for column in ("task", "queue", "reason", "tries", "deaths", "when"):
        table.add_column(column, no_wrap=True)
    table.add_column("error", no_wrap=True)
    for e in entries:
        table.add_row(e.task_id or "-", e.task or "-", e.queue, e.reason, str(e.attempts),
                      str(e.resurrections), _age(e.failed_at), escape(_cut(e.error, error_width)))
    console.print(table)


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


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


# -- inspect / top / queues ------------------------------------------------------------


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds:.1f}s"
    if seconds < 3600:
        return f"{seconds // 60:.0f}m{seconds % 60:02.0f}s"
    return f"{seconds // 3600:.0f}h{seconds % 3600 // 60:02.0f}m"


_STATE_STYLE = {"alive": "green", "stopping": "yellow", "silent": "red", "dead": "red"}


def queues_table(queues: Sequence[QueueStats]) -> Table:
    table = Table(title=f"queues ({len(queues)})", title_justify="left", expand=False)
    table.add_column("queue", overflow="fold")
    for column in ("depth", "in flight", "delayed", "dlq", "oldest"):
        table.add_column(column, justify="right", no_wrap=True)
    table.add_column("dlq by reason", overflow="fold")
    for q in queues:
        reasons = ", ".join(f"{r} {n}" for r, n in sorted(q.dlq_reasons.items()))
        table.add_row(escape(q.name), str(q.depth), str(q.in_flight), str(q.delayed), str(q.dlq),
                      _duration(q.oldest_age), reasons or "-")
    return table


def workers_table(workers: Sequence[WorkerView]) -> Table:
    table = Table(title=f"workers ({sum(w.state == 'alive' for w in workers)} alive)",
                  title_justify="left")
    table.add_column("worker", overflow="fold")
    table.add_column("pid", justify="right", no_wrap=True)
    table.add_column("state", no_wrap=True)
    table.add_column("busy", justify="right", no_wrap=True)
    table.add_column("queues", overflow="fold")
    table.add_column("up", justify="right", no_wrap=True)
    table.add_column("beat", justify="right", no_wrap=True)
    now = time.time()
    for w in workers:
        style = _STATE_STYLE.get(w.state, "")
        state = f"[{style}]{w.state}[/]" if style else w.state
        if w.state == "dead":
            state += f" ({w.resurrected} resurrected)"
        table.add_row(escape(w.id), str(w.pid), state, f"{w.in_flight}/{w.concurrency}",
                      escape(",".join(w.queues)), _duration(now - w.started_at),
                      _age(w.last_heartbeat))
    return table


def running_table(running: Sequence[RunningView], limit: int = 20) -> Table:
    title = f"running ({len(running)})" + (f", longest {limit}" if len(running) > limit else "")
    table = Table(title=title, title_justify="left")
    table.add_column("task id", overflow="fold")
    table.add_column("task", overflow="fold")
    table.add_column("queue", no_wrap=True)
    table.add_column("worker", overflow="fold")
    table.add_column("runtime", justify="right", no_wrap=True)
    table.add_column("try", justify="right", no_wrap=True)
    for r in running[:limit]:  # oldest first: the ones worth a look
        attempt = str(r.attempt) + (f" (+{r.resurrections}R)" if r.resurrections else "")
        table.add_row(r.task_id, escape(r.task), escape(r.queue), r.worker,
                      _duration(r.runtime), attempt)
    return table


def resurrected_table(items: Sequence[ResurrectedView]) -> Table:
    table = Table(title=f"resurrected from dead workers ({len(items)})", title_justify="left")
    table.add_column("task id", overflow="fold")
    table.add_column("task", overflow="fold")
    table.add_column("from worker", overflow="fold")
    table.add_column("died", no_wrap=True)
    table.add_column("now", overflow="fold")
    for r in items:
        table.add_row(r.task_id, escape(r.task or "?"), r.from_worker,
                      _age(r.died_at) if r.died_at else "-", escape(r.now))
    return table


def snapshot_view(snapshot: Snapshot, *, title: str = "") -> Group:
    """The whole picture, as `relier inspect` prints it and `relier top` refreshes it."""
    parts: list[RenderableType] = []
    if title:
        stamp = time.strftime("%H:%M:%S", time.localtime(snapshot.taken_at))
        parts.append(Text(f"{title}  {stamp}", style="bold"))
    parts.append(queues_table(snapshot.queues) if snapshot.queues else Text("no queues yet"))
    parts.append(workers_table(snapshot.workers) if snapshot.workers
                 else Text("no workers registered"))
    if snapshot.running:
        parts.append(running_table(snapshot.running))
    if snapshot.resurrected:
        parts.append(resurrected_table(snapshot.resurrected))
    parts.extend(hint_lines(snapshot.hints))
    return Group(*parts)


def hint_lines(hints: Sequence[str]) -> list[Text]:
    """Warnings printed under the tables (a queue nobody consumes, ...)."""
    return [Text(f"hint: {hint}", style="yellow") for hint in hints]


def task_report(report: TaskReport, console: Console | None = None) -> None:
    console = console or Console()
    console.print(f"[bold]{escape(report.task_id)}[/bold]  {escape(report.task or '?')}  "
                  f"[bold]{report.state}[/bold]")
    console.print(f"  {escape(report.where)}", highlight=False)
    facts = [f"queue {report.queue}" if report.queue else "",
             f"attempt {report.attempt}" if report.attempt else "",
             f"resurrected {report.resurrections}x" if report.resurrections else "",
             f"took {report.duration:.3f}s" if report.duration is not None else ""]
    if any(facts):
        console.print("  " + ", ".join(f for f in facts if f), highlight=False)
    if report.error:
        console.print(f"  error: {escape(report.error)}", highlight=False)
    elif report.result is not None:
        console.print(f"  result: {escape(_short_repr(report.result))}", highlight=False)
    if report.history:
        table = Table(title="history", title_justify="left", show_edge=False)
        table.add_column("when", no_wrap=True)
        table.add_column("event", no_wrap=True)
        table.add_column("detail", overflow="fold")
        for e in report.history:
            when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(e.at)) if e.at else "-"
            table.add_row(when, e.event, escape(e.detail))
        console.print(table)


def _short_repr(value: object, limit: int = 200) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


_CHECK_STYLE = {"ok": "green", "info": "cyan", "warn": "yellow", "fail": "red"}


def diagnosis(found: Diagnosis, console: Console | None = None) -> None:
    console = console or Console()
    console.print(f"[bold]relier doctor[/bold] {found.url}", highlight=False)
    for check in found.checks:
        style = _CHECK_STYLE.get(check.status, "")
        console.print(f"  [{style}]{check.status:>4}[/]  [bold]{check.name}[/bold]: "
                      f"{escape(check.detail)}", highlight=False)
        if check.fix and check.status != "ok":
            console.print(f"        fix: {escape(check.fix)}", highlight=False)
    problems = sum(c.status in ("warn", "fail") for c in found.checks)
    console.print("[green]all good[/green]" if not problems else
                  f"[yellow]{problems} thing(s) to fix[/yellow]")
