"""Terminal rendering of Relier's state with rich tables."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Final

from rich import box
from rich.console import Console, Group, RenderableType
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from relier.observability.dlq_view import decoded_call, fold_relier_frames
from relier.observability.doctor import Diagnosis
from relier.observability.inspect import (
    QueueStats,
    ResurrectedView,
    RunningView,
    Snapshot,
    WorkerView,
)
from relier.observability.schedules import SchedulesReport
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
#: Terminals at least this wide show whole task ids; narrower ones show their first
#: ``ID_PREFIX`` characters, which ``inspect task`` and ``dlq show`` accept.
FULL_ID_WIDTH: Final = 120
ID_PREFIX: Final = 8


def short_id(task_id: str | None, width: int) -> str:
    """The whole id on a wide terminal, its prefix on a narrow one."""
    if not task_id:
        return "-"
    return task_id if width >= FULL_ID_WIDTH else task_id[:ID_PREFIX]


def dlq_table(entries: Sequence[DeadLetter], console: Console | None = None) -> None:
    console = console or Console()
    if not entries:
        console.print("the DLQ is empty")
        return
    width = console.width
    rows = [(short_id(e.task_id, width), e.task or "-", e.queue, e.reason, str(e.attempts),
             str(e.resurrections), _age(e.failed_at)) for e in entries]
    headers = ("task id", "task", "queue", "reason", "tries", "crashes", "when")
    # What the columns before the error take (their widest cells, borders and padding).
    fixed = sum(max(len(cell) for cell in column) for column in zip(headers, *rows,
                                                                    strict=True)) + 3 * 8 + 1
    title = f"dead letters ({len(entries)})" + _prefix_note(width)
    if width - fixed < MIN_ERROR_WIDTH:
        _dlq_lines(entries, rows, title, console)
        return
    table = Table(title=title, title_justify="left")
    for column in headers:
        table.add_column(column, no_wrap=True)
    table.add_column("error", no_wrap=True, overflow="ellipsis")
    for e, row in zip(entries, rows, strict=True):
        table.add_row(*map(escape, row), escape(_cut(e.error, width - fixed)))
    console.print(table)


def _prefix_note(width: int) -> str:
    return "" if width >= FULL_ID_WIDTH else "  (ids shortened: any unique start works)"


def _dlq_lines(entries: Sequence[DeadLetter], rows: Sequence[tuple[str, ...]], title: str,
               console: Console) -> None:
    """Two lines per entry, each cut to the terminal rather than wrapped mid-entry."""
    console.print(title, style="bold", overflow="ellipsis", no_wrap=True)
    for e, (task_id, task, queue, reason, tries, crashes, when) in zip(entries, rows,
                                                                       strict=True):
        died = f"  crashes {crashes}" if crashes != "0" else ""
        console.print(f"{escape(task_id)}  {escape(task)}  {escape(queue)}  {reason}  "
                      f"tries {tries}{died}  {when}", overflow="ellipsis", no_wrap=True,
                      highlight=False)
        console.print(f"    {escape(e.error[:400])}", overflow="ellipsis", no_wrap=True,
                      highlight=False)


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def dlq_entry(entry: DeadLetter, console: Console | None = None, *,
              full_traceback: bool = False) -> None:
    console = console or Console()
    for field in ("task_id", "task", "queue", "reason", "error", "attempts", "resurrections",
                  "replays", "worker"):
        # Escaped: an error may hold "[...]", which rich would take for markup and drop.
        console.print(f"[bold]{field}[/bold]: {escape(str(getattr(entry, field)))}")
    console.print(f"[bold]failed_at[/bold]: {_when(entry.failed_at)} ({_age(entry.failed_at)})")
    if entry.elapsed is not None:
        console.print(f"[bold]elapsed[/bold]: {entry.elapsed:.3f}s")
    call = decoded_call(entry)
    for field in ("args", "kwargs", "error"):
        if field in call:
            label = "body" if field == "error" else field
            console.print(f"[bold]{label}[/bold]: {escape(_json_text(call[field]))}",
                          highlight=False)
    if entry.traceback:
        console.print("[bold]traceback[/bold]:")
        shown = entry.traceback if full_traceback else fold_relier_frames(entry.traceback)
        console.print(shown, markup=False, highlight=False)


def _json_text(value: object, limit: int = 2000) -> str:
    """Arguments as JSON (what was sent), cut to ``limit`` characters."""
    import msgspec

    text = value if isinstance(value, str) else msgspec.json.encode(value).decode()
    return _cut(text, limit)


def _when(moment: float) -> str:
    """A moment as local time with its zone, e.g. ``2026-11-30 04:21:07 UTC``."""
    return time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime(moment))


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


def _table(title: str, width: int) -> Table:
    """A table with full borders on a wide terminal, a compact one on a narrow one."""
    if width >= FULL_ID_WIDTH:
        return Table(title=title, title_justify="left")
    return Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False,
                 show_edge=False)


def queues_table(queues: Sequence[QueueStats], width: int = FULL_ID_WIDTH) -> Table:
    table = _table(f"queues ({len(queues)})", width)
    # A queue name is never wrapped (a cut one ends in "…"), so it never reads as two.
    table.add_column("queue", no_wrap=True, overflow="ellipsis",
                     min_width=min(30, max((len(q.name) for q in queues), default=5)))
    for column in ("depth", "in flight", "delayed", "dlq", "oldest"):
        table.add_column(column, justify="right", no_wrap=True)
    table.add_column("dlq by reason", overflow="fold")
    for q in queues:
        reasons = ", ".join(f"{r} {n}" for r, n in sorted(q.dlq_reasons.items()))
        table.add_row(escape(q.name), str(q.depth), str(q.in_flight), str(q.delayed), str(q.dlq),
                      _duration(q.oldest_age), reasons or "-")
    return table


def workers_table(workers: Sequence[WorkerView], width: int = FULL_ID_WIDTH) -> Table:
    table = _table(f"workers ({sum(w.state == 'alive' for w in workers)} alive)", width)
    table.add_column("worker", overflow="fold")
    table.add_column("pid", justify="right", no_wrap=True)
    table.add_column("state", no_wrap=True)
    table.add_column("busy", justify="right", no_wrap=True)
    # Names separated by ", " wrap between names, never inside one.
    longest = max((len(q) for w in workers for q in w.queues), default=6)
    table.add_column("queues", overflow="fold", min_width=min(longest + 1, 30))
    table.add_column("up", justify="right", no_wrap=True)
    table.add_column("beat", justify="right", no_wrap=True)
    now = time.time()
    for w in workers:
        style = _STATE_STYLE.get(w.state, "")
        state = f"[{style}]{w.state}[/]" if style else w.state
        if w.state == "dead":
            state += f" ({w.resurrected} resurrected)"
        table.add_row(escape(w.id), str(w.pid), state, f"{w.in_flight}/{w.concurrency}",
                      escape(", ".join(w.queues)), _duration(now - w.started_at),
                      _age(w.last_heartbeat))
    return table


def running_table(running: Sequence[RunningView], limit: int = 20,
                  width: int = FULL_ID_WIDTH) -> Table:
    shown = running[:limit]  # oldest first: the ones worth a look
    title = f"running ({len(running)})" + (f", longest {len(shown)}" if len(shown) < len(
        running) else "") + _prefix_note(width)
    table = _table(title, width)
    table.add_column("task id", no_wrap=True)
    table.add_column("task", overflow="ellipsis", no_wrap=True)
    table.add_column("queue", overflow="ellipsis", no_wrap=True)
    table.add_column("worker", overflow="ellipsis", no_wrap=True)
    table.add_column("runtime", justify="right", no_wrap=True)
    table.add_column("attempt", justify="right", no_wrap=True)
    revived = any(r.resurrections for r in shown)
    if revived:  # how often its worker died under it (Phoenix ran it again elsewhere)
        table.add_column("worker died", justify="right", no_wrap=True)
    for r in shown:
        cells = [short_id(r.task_id, width), escape(r.task), escape(r.queue), escape(r.worker),
                 _duration(r.runtime), str(r.attempt)]
        table.add_row(*cells, *([f"{r.resurrections}x" if r.resurrections else "-"]
                                if revived else []))
    return table


def resurrected_table(items: Sequence[ResurrectedView], width: int = FULL_ID_WIDTH) -> Table:
    table = _table(f"resurrected from dead workers ({len(items)})", width)
    table.add_column("task id", no_wrap=True)
    table.add_column("task", overflow="ellipsis", no_wrap=True)
    table.add_column("from worker", overflow="ellipsis", no_wrap=True)
    table.add_column("died", no_wrap=True)
    table.add_column("now", overflow="fold")
    for r in items:
        table.add_row(short_id(r.task_id, width), escape(r.task or "?"), r.from_worker,
                      _age(r.died_at) if r.died_at else "-", escape(r.now))
    return table


def snapshot_view(snapshot: Snapshot, *, title: str = "", width: int = FULL_ID_WIDTH,
                  running_limit: int = 20) -> Group:
    """The whole picture, as `relier inspect` prints it and `relier top` refreshes it."""
    parts: list[RenderableType] = []
    if title:
        stamp = time.strftime("%H:%M:%S %Z", time.localtime(snapshot.taken_at))
        parts.append(Text(f"{title}  {stamp}", style="bold"))
    parts.append(queues_table(snapshot.queues, width) if snapshot.queues
                 else Text("no queues yet"))
    parts.append(workers_table(snapshot.workers, width) if snapshot.workers
                 else Text("no workers registered"))
    if snapshot.running:
        parts.append(running_table(snapshot.running, running_limit, width))
    if snapshot.resurrected:
        parts.append(resurrected_table(snapshot.resurrected, width))
    if snapshot.schedules is not None and snapshot.schedules.schedules:
        parts.append(schedules_view(snapshot.schedules))
    parts.extend(hint_lines(snapshot.hints))
    return Group(*parts)


def hint_lines(hints: Sequence[str]) -> list[Text]:
    """Warnings printed under the tables (a queue nobody consumes, ...)."""
    return [Text(f"hint: {hint}", style="yellow") for hint in hints]


def _when_or_dash(moment: float | None) -> str:
    return _when(moment) if moment else "-"


def schedules_view(found: SchedulesReport) -> Group:
    """`relier schedules`: the leader, then one row per schedule."""
    leader = (f"leader: {escape(found.leader.worker)} (token {found.leader.token})"
              if found.leader else "leader: none (no worker leads the schedules now)")
    table = Table(title=f"schedules ({len(found.schedules)})", title_justify="left")
    for column in ("schedule", "task", "spec", "next run", "last run", "last task", "state",
                   "sent", "missed"):
        table.add_column(column, overflow="fold")
    for s in found.schedules:
        missed = str(s.missed) + (f" ({escape(s.last_missed_reason)})"
                                  if s.last_missed_reason else "")
        table.add_row(escape(s.name), escape(s.task), escape(s.spec), _when_or_dash(s.next_run),
                      _when_or_dash(s.last_run), s.last_task_id or "-", s.last_task_state or "-",
                      str(s.sent), missed)
    return Group(Text(leader), table)



def fitted_view(snapshot: Snapshot, console: Console, *, title: str = "") -> Group:
    """The snapshot for a screen of ``console``'s size: as many running tasks as fit
    (the rest counted in the running table's title), never a table cut off mid-way."""
    width, height = console.width, console.height
    most = min(len(snapshot.running), 20)
    for limit in range(most, 0, -1):
        view = snapshot_view(snapshot, title=title, width=width, running_limit=limit)
        if _height(view, console) <= height:
            return view
    return snapshot_view(snapshot, title=title, width=width, running_limit=1)


def _height(view: RenderableType, console: Console) -> int:
    options = console.options.update(height=None)
    return len(console.render_lines(view, options, pad=False))


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
            when = _when(e.at) if e.at else "-"
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
    warnings = sum(c.status in ("warn", "fail") for c in found.checks)
    if found.problems:
        console.print(f"[red]{len(found.problems)} problem(s) to fix: "
                      f"{escape(', '.join(found.problems))}[/red]")
    elif warnings:
        console.print(f"[yellow]{warnings} warning(s): fine for development; read them "
                      "before production[/yellow]")
    else:
        console.print("[green]all good[/green]")
