"""Typed calls of ``resurrect.lua``: moving one message off a dead worker.

A :class:`Recovery` says what is being done (``requeue`` or ``quarantine``) to which
task, so the resurrector reads its outcome from fields, never from the script's
argument positions.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from relier.protocol import canvas
from relier.protocol.canvas import FollowUps
from relier.store import keys
from relier.store.canvas import settle_call
from relier.store.outbox import Fenced, Push
from relier.store.runner import Op, ScriptCall
from relier.store.settles import Held, Record, dead_letter_effects, fenced_settle


@dataclass(frozen=True, slots=True)
class Recovery:
    """One message to move: what happens to it, for which task ('' if unreadable)."""

    action: Literal["requeue", "quarantine"]
    task_id: str
    op: Op[bool]


def _moved(reply: object) -> bool:
    return bool(int(reply))  # type: ignore[call-overload]


def requeue(*, held: Held, task_id: str, target_queue: str, message: bytes) -> Recovery:
    """Move ``held`` to the consuming end of ``target_queue`` as ``message`` (its updated
    bytes); False if another resurrector moved it first."""
    return Recovery("requeue", task_id, Op(ScriptCall(
        "resurrect", [held.processing, keys.queue_list(target_queue), keys.result(task_id or
                                                                                 "unknown"),
                      keys.dlq_reasons(target_queue)],
        [held.raw, task_id, "requeue", message, "", 0, ""]), _moved,
        lambda: Fenced.of(
            queue=held.queue, processing=held.processing, raw=held.raw,
            effects=[Push(keys.queue_list(target_queue), message, consuming_end=True)])))


def quarantine(*, held: Held, task_id: str, dlq_queue: str, entry: bytes, reason: str,
               result: bytes, result_ttl_s: int, record: Record | None = None,
               follow_ups: FollowUps = canvas.NONE) -> Recovery:
    """Move ``held`` to ``dlq_queue``'s DLQ as ``entry`` (counted under ``reason``), store
    the final ``result``, drop the idempotency ``record`` and send ``follow_ups`` (its
    errbacks, the rest of its chain, its chord part) with the quarantine."""
    call = ScriptCall(
        "resurrect", [held.processing, keys.dead_letters(dlq_queue),
                      keys.result(task_id or "unknown"), keys.dlq_reasons(dlq_queue),
                      *([record.name] if record else [])],
        [held.raw, task_id, "quarantine", entry, result, result_ttl_s, reason])
    return Recovery("quarantine", task_id, Op(
        settle_call(call, 8, follow_ups, result_ttl_s), _moved,
        lambda: fenced_settle(held, dead_letter_effects(
            dlq_queue=dlq_queue, task_id=task_id, entry=entry, reason=reason, result=result,
            result_ttl_s=result_ttl_s, record=record), follow_ups, result_ttl_s)))


def resurrector_lease(*, holder: str, lease_ms: int) -> Op[bool]:
    """Take or keep the lease of the one worker that runs the resurrector; True if held."""
    return Op(ScriptCall("lease", [keys.RESURRECTOR_LOCK], [holder, lease_ms]),
              lambda reply: bool(reply))
