"""Canvas in Redis: the follow-ups a settle script sends, and a canvas push.

The only code that turns canvas data (``relier.protocol.canvas``) into script keys and
arguments: the follow-up section of ``ack.lua``/``dead_letter.lua`` (laid out in
``scripts/lib/follow_ups.lua``) and ``canvas_push.lua`` (a group's or chord's messages,
the saved ``GroupResult`` and the chord size in one step).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from relier.errors import ConfigurationError
from relier.protocol import canvas
from relier.protocol.canvas import ChordPart, FollowUps, Outbound
from relier.protocol.message import encode_json
from relier.store import keys, runner
from relier.store.broker import register_queue, register_queue_sync
from relier.store.clients import AsyncClient, SyncClient
from relier.store.cluster import is_cluster, require_tags
from relier.store.runner import ScriptCall

Arg = str | bytes | int | float


@dataclass(slots=True)
class Section:
    """Keys and arguments appended to a settle call."""

    keys: list[str]
    args: list[Arg]


def target(message: Outbound) -> str:
    """The list a follow-up is LPUSHed onto: its queue's list for its priority."""
    return keys.queue_list(message.queue, message.priority)


def follow_up_section(follow_ups: FollowUps, result_ttl: int) -> Section:
    """The follow-up part of a settle call (see ``lib/follow_ups.lua``)."""
    msgs, stored = follow_ups.messages, follow_ups.results
    if not msgs and not stored and follow_ups.chord is None:
        return Section([], [0, 0, result_ttl, "0"])  # most settles: nothing follows
    section = Section(
        [target(m) for m in msgs] + [keys.result(task_id) for task_id, _ in stored],
        [len(msgs), len(stored), result_ttl, "1" if follow_ups.chord else "0",
         *[m.raw for m in msgs], *[value for _, value in stored]],
    )
    if follow_ups.chord is not None:
        _add_chord(section, follow_ups.chord)
    return section


def _add_chord(section: Section, part: ChordPart) -> None:
    env_head, env_tail = canvas.slot_split(part.callback_envelope, canvas.BODY_SLOT)
    body_head, body_tail = canvas.slot_split(part.callback_body, canvas.RESULTS_SLOT)
    with_results = encode_json(canvas.RESULTS_SLOT) in part.callback_body
    fail_head, fail_tail = canvas.slot_split(part.failure, canvas.ERROR_SLOT)
    section.keys += [keys.taskset(part.group_id, s) for s in keys.CHORD_SUFFIXES]
    section.keys += [keys.queue_list(part.callback_queue, part.callback_priority),
                     keys.result(part.callback_id), *[target(e) for e in part.errbacks]]
    score = "+inf" if part.group_index is None else part.group_index
    section.args += [part.task_id, part.member, score, "1" if with_results else "0",
                     env_head, env_tail, body_head, body_tail, fail_head, fail_tail,
                     len(part.errbacks), *[e.raw for e in part.errbacks]]


def settle_call(call: ScriptCall, first_arg: int, follow_ups: FollowUps,
                result_ttl: int) -> ScriptCall:
    """``call`` (ack or dead_letter) with its follow-up section; ``first_arg`` is the
    ARGV index where the script expects the section's key index."""
    section = follow_up_section(follow_ups, result_ttl)
    args = list(call.args)
    assert len(args) == first_arg - 1, "settle call arguments out of step with the script"
    return ScriptCall(call.name, [*call.keys, *section.keys],
                      [*args, len(call.keys) + 1, *section.args])


@dataclass(frozen=True, slots=True)
class CanvasPush:
    """Messages of one canvas sent at once, with the group record and chord size."""

    messages: Sequence[Outbound]
    #: ``celery-taskset-meta-<gid>`` value (a saved GroupResult), or None.
    group_id: str | None = None
    group_value: bytes = b""
    #: Set for a chord: its header size (``.s``); the old claim ``.c`` is dropped.
    chord_size: int | None = None
    ttl: int = 86400


def canvas_push_call(push: CanvasPush) -> ScriptCall:
    """The ``canvas_push.lua`` call for one chain, group or chord."""
    gid = push.group_id or "-"
    return ScriptCall(
        "canvas_push",
        [keys.KNOWN_QUEUES, keys.taskset(gid), keys.taskset(gid, ".s"),
         keys.taskset(gid, ".c"), *[target(m) for m in push.messages]],
        [push.ttl, push.group_value, "" if push.chord_size is None else push.chord_size,
         *[x for m in push.messages for x in (m.queue, m.raw)]],
    )


def send_sync(client: SyncClient, push: CanvasPush) -> None:
    """Send one canvas (see :class:`CanvasPush`): one atomic script on one server.

    On a cluster its messages may live on several shards, so they go one by one (the
    group record first, so a member never runs before its group exists): a push that
    fails part-way raises, and the members sent before the failure run. A chord is
    refused: its join spans slots."""
    if not is_cluster(client):
        runner.run_sync(client, canvas_push_call(push))
        return
    _check_for_cluster(push)
    if push.group_id is not None and push.group_value:
        client.set(keys.taskset(push.group_id), push.group_value, ex=push.ttl)
    for message in push.messages:
        register_queue_sync(client, message.queue)
        client.lpush(target(message), message.raw)


async def send(client: AsyncClient, push: CanvasPush) -> None:
    """:func:`send_sync` from async code."""
    if not is_cluster(client):
        await runner.run(client, canvas_push_call(push))
        return
    _check_for_cluster(push)
    if push.group_id is not None and push.group_value:
        await client.set(keys.taskset(push.group_id), push.group_value, ex=push.ttl)
    for message in push.messages:
        await register_queue(client, message.queue)
        await client.lpush(target(message), message.raw)


def _check_for_cluster(push: CanvasPush) -> None:
    if push.chord_size is not None:
        raise ConfigurationError(
            "chords are not supported on a Redis Cluster: their join spans hash slots "
            "(chains and groups are; see docs/scaling.md)")
    require_tags([m.queue for m in push.messages])
