"""Demo scene: a burst overfills a small queue; each refusal says when to come back.

``render_thumbnail`` takes a second and may have 4 messages waiting in its queue. The
two demo workers run 40 at once, so a burst of 50 pushes gets 44 or so in and the rest
refused with ``AdmissionRejectedError``: nothing enqueued, ``retry_after`` estimated from
the queue's drain rate. The client waits as told and pushes the rest again.
"""

from __future__ import annotations

import time

import redis
from rich.console import Console

from relier.demo import tasks
from relier.errors import AdmissionRejectedError
from relier.handle import TaskHandle

BURST = 50
#: The scene stops retrying after this long (the demo must always end).
DEADLINE_S = 60.0


def overfull_queue(console: Console, client: redis.Redis) -> None:
    """Run the scene: burst, refusals with ``retry_after``, retries until all are in."""
    task = tasks.render_thumbnail
    console.rule(f"admission control: a burst of {BURST} into a queue that holds "
                 f"{task.max_queue_depth}")
    console.print(f"  render_thumbnail takes 1 s; the two workers run up to 40 at once, and "
                  f"queue {task.queue!r} takes at most {task.max_queue_depth} more "
                  f"(max_queue_depth={task.max_queue_depth})")
    pending = [f"photo-{i:02d}.jpg" for i in range(BURST)]
    handles: list[TaskHandle[str]] = []
    deadline = time.monotonic() + DEADLINE_S
    refusals = 0
    for round_no in range(1, 100):
        if not pending or time.monotonic() > deadline:
            break
        marks: list[str] = []
        refused: list[AdmissionRejectedError] = []
        still_out: list[str] = []
        for photo in pending:
            try:
                handles.append(task.push(photo))
                marks.append("[green]✓[/green]")
            except AdmissionRejectedError as exc:
                refused.append(exc)
                still_out.append(photo)
                marks.append("[red]✗[/red]")
        console.print(f"  push round {round_no}: {''.join(marks)}")
        console.print(f"    {len(pending) - len(refused)} accepted, {len(refused)} refused "
                      "because the queue was full" if refused else
                      f"    all {len(pending)} accepted")
        if refused:
            refusals += len(refused)
            first = refused[0]
            console.print(f"    [red]AdmissionRejectedError[/red]: queue={first.queue!r} "
                          f"depth={first.depth} limit={first.limit} "
                          f"retry_after=[bold]{first.retry_after:.1f} s[/bold]")
            console.print("    nothing of theirs was enqueued; waiting as told")
            wait = max(exc.retry_after for exc in refused)
            time.sleep(min(wait, max(0.0, deadline - time.monotonic())))
        pending = still_out
    results = [h.result(timeout=60) for h in handles]
    console.print(f"  all {len(results)} thumbnails rendered; {refusals} pushes were refused "
                  "on the way, none was lost or half-enqueued")
