"""What a worker says when it starts: the tasks it registered (Celery's ``[tasks]``), and a
warning when it has none, since every message would then wait and be dead-lettered as
``unknown_task``.
"""

from __future__ import annotations

import logging

from relier.app import App

log = logging.getLogger("relier.worker")


def task_lines(app: App) -> list[str]:
    """One line per registered task: its name, queue and, when set, its limits."""
    lines = []
    for name in sorted(app.tasks):
        task = app.tasks[name]
        extras = [f"queue={task.queue}"]
        if task.retries:
            extras.append(f"retries={task.retries}")
        if task.hard_timeout:
            extras.append(f"hard_timeout={task.hard_timeout:g}s")
        lines.append(f"  . {name}  ({', '.join(extras)})")
    return lines


def announce_tasks(app: App, target: str | None) -> None:
    """Log the ``[tasks]`` banner, or a warning naming what to pass when there are none."""
    lines = task_lines(app)
    if lines:
        log.info("[tasks]\n%s", "\n".join(lines))
        return
    if target is None:
        log.warning("no -A given (nor RELIER_APP, nor [tool.relier] app in pyproject.toml): "
                    "this worker knows no tasks; start it with -A yourproject.tasks")
    else:
        log.warning("-A %s registered no tasks: decorate functions with @rl_task (or "
                    "@app.task and pass -A module:app); messages for unknown tasks wait "
                    "and are then dead-lettered as unknown_task", target)
