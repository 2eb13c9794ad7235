"""What a run writes into its result besides the value: custom states while it runs
(``update_state``), Celery's extended fields, and Relier's own name and runtime.

A custom state is stored as Celery stores one (``status`` = the state, ``result`` = the
meta, no ``date_done``), through ``progress.lua``, which never replaces a ready state:
a run that was revoked, or that outlived its resurrection, cannot turn a final result
back into ``PROGRESS``.
"""

from __future__ import annotations

from typing import Any

import msgspec

from relier import control_store
from relier.app import App
from relier.protocol import results
from relier.protocol.message import TaskMessage
from relier.protocol.results import ResultMeta


def hostname(worker_id: str) -> str:
    """The worker's Celery node name (events, pidbox, extended results)."""
    return f"relier@{worker_id}"


class ResultFacts:
    """Fills in the fields a result of this run carries besides its value."""

    def __init__(self, message: TaskMessage, worker_id: str, extended: bool) -> None:
        self._message = message
        self._worker = hostname(worker_id)
        self._extended = extended

    def complete(self, meta: ResultMeta, runtime_s: float | None = None) -> ResultMeta:
        """``meta`` with the extended fields (when on) and Relier's name and runtime."""
        message = self._message
        if self._extended:
            results.extend(meta, name=message.task, args=message.args, kwargs=message.kwargs,
                           worker=self._worker, retries=message.retries,
                           queue=message.origin_queue)
        meta.relier_task = message.task
        if runtime_s is not None:
            meta.relier_runtime = round(runtime_s, 6)
        return meta


class ProgressReporter:
    """``current_task().update_state`` for one run."""

    def __init__(self, app: App, message: TaskMessage, facts: ResultFacts) -> None:
        self._app = app
        self._task_id = message.id
        self._facts = facts

    def _encoded(self, state: Any, meta: Any) -> bytes:
        if not isinstance(state, str) or not state:
            raise ValueError(f"update_state: state must be a non-empty string, not {state!r}")
        if state in results.READY_STATES:
            raise ValueError(f"update_state: {state} is a final state; return a value or "
                             f"raise instead")
        stored = self._facts.complete(results.custom_state(self._task_id, state, meta))
        try:
            return results.encode(stored)
        except (TypeError, msgspec.EncodeError) as exc:
            raise TypeError(f"update_state: meta is not JSON-serialisable: {exc}") from None

    def report(self, state: str, meta: Any) -> bool:
        payload = self._encoded(state, meta)
        return control_store.store_progress_sync(
            self._app.sync_client(), self._task_id, payload, self._app.settings.result_ttl)

    async def areport(self, state: str, meta: Any) -> bool:
        payload = self._encoded(state, meta)
        call = control_store.progress_call(self._task_id, payload,
                                           self._app.settings.result_ttl)
        return bool(await self._app.broker().run(call))
