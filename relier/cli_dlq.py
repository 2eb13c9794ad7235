"""`relier dlq`: list, show, replay and purge dead-lettered tasks."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from relier.cli_common import JsonOption, RedisOption, fail, print_json, sync_client

dlq_cli = typer.Typer(help="The dead-letter queue: list, show, replay, purge.",
                      no_args_is_help=True)

QueueFilter = Annotated[str | None, typer.Option("--queue", "-q", help="Only this queue.")]
TaskFilter = Annotated[str | None, typer.Option("--task", help="Only this task name.")]
ReasonFilter = Annotated[str | None, typer.Option("--reason", help="Only this reason.")]


@dlq_cli.command("list")
def dlq_list(
    queue: QueueFilter = None,
    task: TaskFilter = None,
    reason: ReasonFilter = None,
    limit: Annotated[int, typer.Option(help="Show at most this many (newest first).")] = 100,
    json_output: JsonOption = False,
    redis_url: RedisOption = None,
) -> None:
    """List dead-lettered tasks, newest first."""
    from relier.dlq import DeadLetterQueue, Filter

    entries = DeadLetterQueue(sync_client(redis_url)).entries(Filter(queue, task, reason), limit)
    if json_output:
        print_json(entries)
        return
    from relier.observability.render import dlq_table

    dlq_table(entries)


@dlq_cli.command("show")
def dlq_show(
    task_id: Annotated[str, typer.Argument(help="The task id of the entry (or its start).")],
    json_output: JsonOption = False,
    full_traceback: Annotated[bool, typer.Option(
        "--full-traceback", help="Keep Relier's own frames in the traceback.")] = False,
    redis_url: RedisOption = None,
) -> None:
    """Show one entry whole: error, arguments, traceback and original message."""
    from relier.dlq import DeadLetterQueue, Filter
    from relier.observability.dlq_view import with_decoded

    dlq = DeadLetterQueue(sync_client(redis_url))
    entries = dlq.entries(Filter(task_id=dlq_id(dlq, task_id)))
    if json_output:
        print_json(with_decoded(entries[0]))
        return
    from relier.observability.render import dlq_entry

    dlq_entry(entries[0], full_traceback=full_traceback)


def dlq_id(dlq: Any, wanted: str) -> str:
    """The DLQ entry's whole task id for ``wanted`` or a unique start of it."""
    from relier.observability.id_prefix import resolve_prefix

    try:
        return resolve_prefix(wanted, [e.task_id for e in dlq.entries() if e.task_id])
    except LookupError as exc:
        fail(f"no DLQ entry for task {wanted}: {exc}")
        raise AssertionError("unreachable") from exc


@dlq_cli.command("replay")
def dlq_replay(
    task_id: Annotated[str | None, typer.Argument(help="Replay this task's entry.")] = None,
    queue: QueueFilter = None,
    task: TaskFilter = None,
    reason: ReasonFilter = None,
    all_entries: Annotated[bool, typer.Option("--all", help="Every matching entry.")] = False,
    redis_url: RedisOption = None,
) -> None:
    """Enqueue dead-lettered tasks again (their original message, with fresh counters)."""
    from relier.dlq import DeadLetterQueue, Filter

    if task_id is None and not (all_entries or queue or task or reason):
        fail("name a task id, or use --all / --queue / --task / --reason")
    dlq = DeadLetterQueue(sync_client(redis_url))
    if task_id is not None:
        task_id = dlq_id(dlq, task_id)
    replayed = dlq.replay(Filter(queue, task, reason, task_id))
    typer.echo(f"replayed {len(replayed.task_ids)} task(s)")
    for replayed_id in replayed.task_ids:
        typer.echo(f"  {replayed_id}")
    for line in replayed.skipped:
        typer.echo(f"not replayed: {line}", err=True)
    if replayed.skipped:
        raise typer.Exit(1)


@dlq_cli.command("purge")
def dlq_purge(
    queue: QueueFilter = None,
    task: TaskFilter = None,
    reason: ReasonFilter = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask.")] = False,
    redis_url: RedisOption = None,
) -> None:
    """Delete dead-lettered entries for good."""
    from relier.dlq import DeadLetterQueue, Filter

    dlq = DeadLetterQueue(sync_client(redis_url))
    only = Filter(queue, task, reason)
    count = len(dlq.entries(only))
    if count == 0:
        typer.echo("nothing to purge")
        return
    if not yes and not typer.confirm(f"delete {count} DLQ entr{'y' if count == 1 else 'ies'}?"):
        raise typer.Exit(1)
    typer.echo(f"purged {dlq.purge(only)} entr{'y' if count == 1 else 'ies'}")
