"""Every Redis key name Relier reads or writes, in one place.

Queue lists are kombu's: the list named after the queue holds priority bucket 0 and
``<queue>\\x06\\x16{3,6,9}`` hold the others, so Celery producers and workers share
them. Relier's own bookkeeping for queue ``q`` lives under ``relier:{q}:...``; the hash
tag puts all of a queue's keys in one cluster slot, and none collides with kombu's
``unacked`` keys, so a Celery worker's restore sweep never touches Relier's work.
"""

from __future__ import annotations

from typing import Final

# Re-exported: the queue names are protocol facts, the keys built from them are ours.
from relier.protocol.queues import DEFAULT_QUEUES as DEFAULT_QUEUES
from relier.protocol.queues import REQUEUE_QUEUE as REQUEUE_QUEUE
from relier.protocol.queues import SUSPECT_QUEUE as SUSPECT_QUEUE

PRIORITY_SEPARATOR: Final = "\x06\x16"
#: kombu's priority steps. A lower number is served first.
PRIORITY_STEPS: Final = (0, 3, 6, 9)

#: The lease held by the one worker that runs the suspect lane.
SUSPECT_LEASE: Final = "relier:suspects:runner"

#: Every queue any Relier worker or producer has used (a set), for `inspect` and `dlq`.
KNOWN_QUEUES: Final = "relier:queues"
#: Registered workers (a hash: worker id -> JSON description).
WORKERS: Final = "relier:workers"
#: The lease lock held by the one worker that runs the resurrector.
RESURRECTOR_LOCK: Final = "relier:resurrector:leader"


def hash_tag(name: str) -> str | None:
    """The part of ``name`` a Redis Cluster hashes when it is a key (what lies between its
    first ``{`` and the next ``}``, if not empty), or None when the whole name is hashed."""
    start = name.find("{")
    end = name.find("}", start + 1) if start >= 0 else -1
    return name[start + 1:end] if end > start + 1 else None


def _space(queue: str) -> str:
    """The prefix of queue ``queue``'s own keys, hashed like its lists.

    An untagged name is wrapped (``relier:{emails}``: the tag is the name, as the bare list
    ``emails`` is hashed whole). A name that carries its own tag (``{emails}``, as queues
    on a cluster must) keeps it (``relier:q:{emails}``), so that its priority lists, which
    hash only by their tag, share the slot too.
    """
    return f"relier:q:{queue}" if hash_tag(queue) else f"relier:{{{queue}}}"


def priority_bucket(priority: int | None) -> int:
    """kombu's bucket for a priority: clamp to 0..9, then the largest step not above it."""
    value = min(max(priority or 0, 0), 9)
    return max(step for step in PRIORITY_STEPS if step <= value)


def queue_list(queue: str, priority: int | None = None) -> str:
    """The list a message of this priority is LPUSHed to."""
    bucket = priority_bucket(priority)
    return queue if bucket == 0 else f"{queue}{PRIORITY_SEPARATOR}{bucket}"


def queue_lists(queue: str, *, cluster: bool = False) -> tuple[str, str, str, str]:
    """The queue's four lists, in the order kombu consumes them (bucket 0 first).

    On a ``cluster``, a name without a hash tag (only Relier's own lanes, ``re-queue`` and
    its suspect lane: user queues must carry one) has no priority lists, which would land
    in other slots: its one list stands for all four (work is only ever pushed there)."""
    if cluster and not hash_tag(queue):
        return (queue, queue, queue, queue)
    return (
        queue,
        f"{queue}{PRIORITY_SEPARATOR}3",
        f"{queue}{PRIORITY_SEPARATOR}6",
        f"{queue}{PRIORITY_SEPARATOR}9",
    )


def processing(queue: str, worker_id: str) -> str:
    """The list holding the messages one worker has taken from one queue."""
    return f"{_space(queue)}:processing:{worker_id}"


def delayed(queue: str) -> str:
    """Sorted set of messages due later (countdown, eta, retry, deferral), by due time in ms."""
    return f"{_space(queue)}:delayed"


def deferred(queue: str) -> str:
    """Sorted set of messages no worker that saw them could run yet (unknown task name,
    newer payload version), by the end of their ``defer_window`` in ms. Only a worker that
    can run one takes it out early; the pump moves the rest back to the queue at that end."""
    return f"{_space(queue)}:deferred"


def dead_letters(queue: str) -> str:
    """List of DLQ entries (JSON) for messages of this queue that will not run again."""
    return f"{_space(queue)}:dlq"


def dlq_reasons(queue: str) -> str:
    """Hash: DLQ reason -> how many of the queue's DLQ entries have it, kept by the scripts
    that add and remove entries (so a scrape reads one hash instead of every entry)."""
    return f"{_space(queue)}:dlq:reasons"


def stats(queue: str) -> str:
    """Hash of counters for one queue, kept by the scripts that do the counted thing.

    Fields: ``fetched`` (messages taken by workers, ever), ``rejected`` (pushes refused by
    admission control), ``idempotent_hits`` (duplicate dispatches answered from the
    idempotency record), and the drain-rate window ``rate`` (messages/s), ``window_start_ms``
    and ``window_count`` that admission control's ``retry_after`` is estimated from.
    """
    return f"{_space(queue)}:stats"


def outbox(queue: str) -> str:
    """List of what settles in the queue's slot left to do in other slots (on a cluster
    only; see relier/store/outbox.py): msgpack entries, newest at the head."""
    return f"{_space(queue)}:outbox"


def idempotency(task: str, key: str, queue: str = "") -> str:
    """Hash recording one idempotent call of ``task``: ``state`` (pending, running,
    succeeded), ``id`` (the task id that owns it) and, once succeeded, ``result``.

    Keys are scoped by task name, so ``idempotency_key="order-17"`` on two different
    tasks names two different calls. A call to a hash-tagged queue (on a cluster) keeps
    its record in that queue's slot, where the enqueue that checks it runs, so there the
    record is scoped by queue too."""
    return f"{_space(queue)}:idem:{task}:{key}" if hash_tag(queue) else f"relier:idem:{task}:{key}"


def rate_limit(task_name: str) -> str:
    """A task's global rate-limit bucket: the time its next token is due (µs, server clock).

    Per task, not per queue, so the key stands alone (the script touches nothing else).
    """
    return f"relier:rate:{task_name}"


def lock(name: str) -> str:
    """A named lock (``app.lock``): ``"<holder> <token>"`` with the lease as TTL. Also the
    channel its release is announced on. The tag keeps it in its fence counter's slot."""
    return f"relier:lock:{{{name}}}"


def lock_fence(name: str) -> str:
    """Counter of the fencing tokens a named lock has handed out (never expires)."""
    return f"relier:lock:{{{name}}}:fence"


def heartbeat(worker_id: str) -> str:
    """A key with a short TTL that exists while the worker is alive."""
    return f"relier:worker:{worker_id}:heartbeat"


def running(worker_id: str) -> str:
    """The tasks a worker runs (JSON list), rewritten by every heartbeat; kept apart from
    the registry entry so the resurrector's sweep does not read it."""
    return f"relier:worker:{worker_id}:running"


def result(task_id: str) -> str:
    """Where Celery's Redis backend keeps a result; also its pub/sub channel."""
    return f"celery-task-meta-{task_id}"


#: Revoked task ids (a sorted set: id -> when it was revoked, ms on Redis's clock).
#: Entries older than the writer's ``revoke_ttl`` are pruned by ``revoke.lua``, and the
#: key expires after that TTL, so revocations outlive worker restarts but not forever.
REVOKED: Final = "relier:revoked"


def pidbox_channel(db: int) -> str:
    """The fanout channel Celery's remote-control clients publish on (kombu's naming)."""
    return f"/{db}.celery.pidbox"


def pidbox_bindings(exchange: str) -> str:
    """kombu's binding set of an exchange; each member is
    ``<routing key>\\x06\\x16<pattern>\\x06\\x16<queue>``."""
    return f"_kombu.binding.{exchange}"
#: The named lock (``app.lock``) whose holder runs the schedules; its value is
#: ``"<worker id> <fencing token>"``.
SCHEDULER_LOCK: Final = "relier-scheduler"
#: Set of worker ids that have declared schedules (pruned of those whose declaration
#: expired, by whoever reads it).
SCHEDULE_DECLARERS: Final = "relier:schedules:declarers"


def schedule_declaration(worker_id: str) -> str:
    """The schedules one worker's code declares (JSON), with a TTL the worker renews."""
    return f"relier:schedules:declared:{worker_id}"


def schedule_state(name: str, queue: str = "") -> str:
    """Hash of one schedule's progress: ``last_tick_ms`` (the newest tick done, sent or
    missed; or when it was first seen), ``last_run_ms`` (the newest tick sent),
    ``last_sent_ms``, ``last_task_id``, ``last_status``, ``sent``, ``missed``,
    ``last_missed_ms``, ``last_missed_reason`` and, on a cluster, ``leader_token``. Written
    only by the fenced tick scripts.

    On a cluster (a hash-tagged ``queue``, the one the schedule sends to) it lives in that
    queue's slot, where the tick script that records it also enqueues."""
    return f"{_space(queue)}:schedule:{name}" if hash_tag(queue) else f"relier:schedule:{name}"


def taskset(group_id: str, suffix: str = "") -> str:
    """Celery's group/chord keys: ``celery-taskset-meta-<gid>`` (a saved GroupResult) and,
    with ``suffix``, a chord's join: ``.j`` results, ``.t`` extra size, ``.s`` size, ``.d``
    seen parts, ``.c`` dispatch claim."""
    return f"celery-taskset-meta-{group_id}{suffix}"


#: The parts of a chord's join, in the order ``lib/chord.lua`` takes them.
CHORD_SUFFIXES = (".j", ".t", ".s", ".d", ".c")
