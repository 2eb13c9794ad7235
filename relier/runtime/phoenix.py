"""Phoenix: bringing back the tasks of a worker that died.

Every worker runs this loop; a lease lock lets one of them lead at a time. The leader
looks for registered workers whose heartbeat key has expired and, message by message,
moves what their processing lists hold to ``re-queue`` or the suspect lane (below).
Each move is one script that also drops the message's fence, so the dead run (if it was
only frozen) can never ack it or store a result.

Each recovery counts as a resurrection of that task (a header on the message). A death
is only evidence against a task when the worker held that task and nothing else: then it
counts as a *lone death*. A task at its first death among others goes to ``re-queue`` and
runs again at once. A task that died alone, or at a second death, is a suspect: it goes to
the suspect lane, which one worker at a time runs one message at a time with nothing else
(suspects.py), so its next death is attributable. A task with ``max_resurrections`` lone
deaths is poison: it is quarantined in the DLQ instead of being handed to the next worker
to kill. Innocent tasks that shared a worker with a killer (or with random kills) finish,
beside others or alone.

After a Redis outage (an error on its own connection, or a server that restarted since
the last sweep) the leader judges no one for one heartbeat interval plus a margin: live
workers' heartbeat keys may have lapsed during the outage, and each re-arms its key at
its next beat. A whole TTL would be waiting for a key that is already gone.
"""

from __future__ import annotations

import logging
import time
from typing import Final

import anyio

from relier.errors import PayloadError
from relier.protocol import canvas, dead_letter, registry, results
from relier.protocol import message as wire
from relier.protocol.queues import REQUEUE_QUEUE, SUSPECT_QUEUE
from relier.protocol.registry import WorkerInfo
from relier.runtime.delivery import idempotency_record
from relier.runtime.hooks import RecoveryMetrics
from relier.settings import Settings
from relier.store import lanes, ops, recovery, runner, server
from relier.store import registry as registry_store
from relier.store.broker import REDIS_ERRORS, Broker
from relier.store.settles import Held

log = logging.getLogger("relier.phoenix")

#: Seconds a dead worker's registry entry stays visible to `relier inspect`.
KEEP_DEAD_S: Final = 3600.0
#: After an outage, what a live worker's next beat may take beyond its interval (the
#: beat's own round trips and reconnection).
OUTAGE_MARGIN_S: Final = 1.0


def outage_grace(settings: Settings) -> float:
    """Seconds to judge no one after an outage: a live worker beats again within this."""
    return min(settings.heartbeat_interval + OUTAGE_MARGIN_S, settings.heartbeat_ttl)


class Resurrector:
    """Finds dead workers and recovers their in-flight messages."""

    def __init__(
        self, broker: Broker, worker_id: str, settings: Settings,
        metrics: RecoveryMetrics | None = None,
    ) -> None:
        self._broker = broker
        self._metrics = metrics
        self._worker_id = worker_id
        self._settings = settings
        self.interval_s = min(1.0, settings.heartbeat_interval / 2)
        self._lease_ms = int(max(3 * self.interval_s, 1.0) * 1000)
        #: No judging before this (monotonic): set after an outage.
        self._quiet_until = 0.0
        #: The server's run id at the last sweep: a new one means it restarted in between
        #: (redis-py may reconnect without this loop ever seeing an error).
        self._server_run: str | None = None

    async def run(self) -> None:
        while True:
            try:
                if await self._lead() and await self._settled_after_outage():
                    await self.sweep()
            except REDIS_ERRORS as exc:
                log.debug("resurrector paused by a Redis error: %s", exc)
                self._after_outage()
            await anyio.sleep(self.interval_s)

    def _after_outage(self) -> None:
        self._quiet_until = time.monotonic() + outage_grace(self._settings)

    async def _settled_after_outage(self) -> bool:
        """False while live workers may still be re-arming heartbeats lost in an outage."""
        run_id = await server_run_id(self._broker)
        if self._server_run is not None and run_id != self._server_run:
            # A detail of recovery: the outage itself is the fetch loops' one line.
            log.debug("Redis restarted: judging no worker for %.1fs",
                      outage_grace(self._settings))
            self._after_outage()
        self._server_run = run_id
        return time.monotonic() >= self._quiet_until

    async def _lead(self) -> bool:
        return await runner.perform(self._broker.client, recovery.resurrector_lease(
            holder=self._worker_id, lease_ms=self._lease_ms))

    async def sweep(self) -> int:
        """One pass: recover every dead worker's messages; returns how many moved."""
        client = self._broker.client
        workers = (await registry_store.entries(client)).workers
        beating = await registry_store.beating(client, [info.id for info in workers])
        moved = 0
        now = time.time()
        for info, alive in zip(workers, beating, strict=True):
            if alive or info.id == self._worker_id:
                continue
            if info.state != registry.DEAD:
                moved += await self._resurrect_worker(info, now)
            elif info.died_at is not None and now - info.died_at > KEEP_DEAD_S:
                await registry_store.forget(client, info.id)
        return moved

    async def _resurrect_worker(self, info: WorkerInfo, now: float) -> int:
        silent_for = now - info.last_heartbeat
        moved: list[tuple[str, recovery.Recovery]] = []
        held_by_queue = await self._held(info)
        # The death is evidence against a task only if the worker held nothing else.
        alone = sum(len(held) for held in held_by_queue.values()) == 1
        for queue, held in held_by_queue.items():
            plans = [self._safe_recovery(queue, info.id, raw, alone=alone) for raw in held]
            if plans:
                replies = await ops.run_all(self._broker.client, [p.op for p in plans])
                for failed in (r for r in replies if isinstance(r, Exception)):
                    log.error("could not recover a message of worker %s: %s", info.id, failed)
                moved += [(queue, p) for p, r in zip(plans, replies, strict=True)
                          if not isinstance(r, Exception) and p.op.read(r)]
        info.state = registry.DEAD
        info.died_at = now
        info.resurrected = len(moved)
        info.resurrected_ids = [plan.task_id for _, plan in moved if plan.task_id]
        if self._metrics is not None:
            self._metrics.recovery_latency(silent_for)
            for queue, plan in moved:
                self._metrics.resurrected(queue, plan.action)
        await registry_store.record(self._broker.client, info)
        # A dead runner of the suspect lane frees it now, not when its lease runs out.
        await lanes.release_suspect_lease(self._broker, holder=info.id)
        log.warning("worker %s (pid %d on %s) silent for %.1fs: declared dead, "
                    "%d task(s) resurrected", info.id, info.pid, info.host, silent_for,
                    len(moved))
        return len(moved)

    def _safe_recovery(
        self, queue: str, dead_worker: str, raw: bytes, *, alone: bool
    ) -> recovery.Recovery:
        """:meth:`_recovery`, with anything unforeseen quarantining the message rather
        than stopping the resurrector (which would leave every dead worker unrecovered)."""
        try:
            return self._recovery(queue, dead_worker, raw, alone=alone)
        except Exception as exc:
            error = PayloadError("payload_invalid", f"could not be recovered: {exc!r}")
            return self._unreadable(queue, dead_worker, raw, error)

    async def _held(self, info: WorkerInfo) -> dict[str, list[bytes]]:
        """What the dead worker's processing lists hold, per queue (one round trip)."""
        return await self._broker.processing_lists(info.queues, info.id)

    def _recovery(
        self, queue: str, dead_worker: str, raw: bytes, *, alone: bool
    ) -> recovery.Recovery:
        """What moves one message on: to ``re-queue`` or the suspect lane, or quarantine
        as poison when this was its ``max_resurrections``-th lone death."""
        held = Held(queue=queue, worker_id=dead_worker, raw=raw)
        try:
            message = wire.decode(raw)
        except PayloadError as exc:
            # Undecodable: quarantined now. Handed on, it could only be dead-lettered by
            # the next worker, or take that worker down too if it is hostile enough.
            return self._unreadable(queue, dead_worker, raw, exc)
        count = message.resurrections + 1
        lone = message.lone_deaths + (1 if alone else 0)
        origin = wire.home_queue(queue, message.headers)
        if lone >= self._settings.max_resurrections:
            log.error("task %s[%s] killed its worker %d times while running alone: "
                      "quarantined as poison", message.task, message.id, lone)
            poison = self._poison_result(message, lone)
            # Dead-lettered: its errbacks, the rest of its chain and its chord part go
            # with the quarantine, as with any other dead letter.
            return recovery.quarantine(
                held=held, task_id=message.id, dlq_queue=origin,
                entry=self._poison_entry(message, raw, count, lone, dead_worker, origin),
                reason="poison", result=poison, result_ttl_s=self._settings.result_ttl,
                record=idempotency_record(message, queue),
                follow_ups=poison_follow_ups(message, poison, origin))
        # Suspect: it just died alone, or it was at an earlier death too. A task at its
        # first shared death runs again at once, beside others, like any recovered work.
        suspect = alone or message.resurrections >= 1
        message.headers[wire.RESURRECTIONS_HEADER] = count
        message.headers[wire.LONE_DEATHS_HEADER] = lone
        message.headers[wire.ORIGIN_QUEUE_HEADER] = origin
        wire.redelivered(message)
        target = SUSPECT_QUEUE if suspect else REQUEUE_QUEUE
        return recovery.requeue(held=held, task_id=message.id, target_queue=target,
                                message=wire.encode(message))

    def _unreadable(
        self, queue: str, dead_worker: str, raw: bytes, error: PayloadError
    ) -> recovery.Recovery:
        """The call that quarantines a message nobody can decode: a DLQ entry with the
        reason, naming the task and id if its headers still can, and its caller told."""
        head = wire.peek(raw)
        origin = wire.home_queue(queue, head.headers if head else {})
        task_id = head.id if head else ""
        log.error("a message %s held by dead worker %s cannot be decoded (%s): quarantined",
                  task_id or "without a readable id", dead_worker, error)
        envelope, envelope_raw = dead_letter.original_message(raw)
        entry = dead_letter.encode(dead_letter.DeadLetter(
            task_id=task_id or None, task=head.task if head else None, queue=origin,
            reason=error.reason, error=error.detail, worker=dead_worker,
            failed_at=time.time(), message=envelope, message_raw=envelope_raw,
            resurrections=head.resurrections if head else 0,
        ))
        result = results.encode(results.failure(task_id, error, None)) if task_id else b""
        return recovery.quarantine(
            held=Held(queue=queue, worker_id=dead_worker, raw=raw), task_id=task_id,
            dlq_queue=origin, entry=entry, reason=error.reason, result=result,
            result_ttl_s=self._settings.result_ttl)

    def _poison_entry(
        self, message: wire.TaskMessage, raw: bytes, count: int, lone: int, dead_worker: str,
        origin: str,
    ) -> bytes:
        envelope, envelope_raw = dead_letter.original_message(raw)
        return dead_letter.encode(dead_letter.DeadLetter(
            task_id=message.id,
            task=message.task,
            queue=origin,
            reason="poison",
            error=f"the task's worker died {lone} times while running it alone",
            attempts=message.retries + 1,
            resurrections=count,
            replays=message.replays,
            worker=dead_worker,
            failed_at=time.time(),
            message=envelope,
            message_raw=envelope_raw,
        ))

    @staticmethod
    def _poison_result(message: wire.TaskMessage, lone: int) -> bytes:
        return results.encode(results.failure_from(
            message.id, "PoisonTask", "relier.errors",
            [f"worker died {lone} times running this task alone"], None,
        ))


async def server_run_id(broker: Broker) -> str:
    """The Redis server's run id (a new one after every restart)."""
    return await server.run_id(broker.client)


def poison_follow_ups(
    message: wire.TaskMessage, poison: bytes, home: str
) -> canvas.FollowUps:
    """A quarantined task's canvas on failure; follow-ups go to its own queue (``home``)
    when their signature names none (the resurrector does not know the tasks' queues)."""
    if not any(message.embed.values()):
        return canvas.NONE
    try:
        return canvas.after_failure(message, canvas.read_canvas(message),
                                    results.decode(poison), lambda _sig: home)
    except Exception:  # its canvas was refused before it ran, or a bug: never stop here
        log.exception("task %s[%s]: its canvas is not sent with its quarantine",
                      message.task, message.id)
        return canvas.NONE
