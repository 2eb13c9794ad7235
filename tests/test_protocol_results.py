"""Replay Celery 5.7's result-backend values (``tests/vectors/result_*.json``) against
``relier.protocol.results``, and check that what Relier writes has Celery's shape.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from relier.errors import PayloadError
from relier.protocol import results
from relier.store import keys

VECTORS = Path(__file__).parent / "vectors"

#: The fields of a stored result, in the order Celery writes them.
CELERY_FIELDS = ["status", "result", "traceback", "children", "date_done", "task_id"]
#: Optional fields Celery adds (``parent_id``/``group_id``, and ``result_extended``).
CELERY_OPTIONAL = {"group_id", "parent_id", "name", "args", "kwargs", "worker", "retries", "queue"}


def raw(name: str) -> bytes:
    return (VECTORS / name).read_bytes()


def load(name: str) -> Any:
    return json.loads(raw(name))


def celery_core(value: dict[str, Any]) -> dict[str, Any]:
    """A Celery result without its optional fields, in Celery's order."""
    return {k: v for k, v in value.items() if k not in CELERY_OPTIONAL}


def date_done_and_id_removed(value: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in value.items() if k not in {"date_done", "task_id"}}


RETRIED = "e7000000-0000-4000-8000-000000000007"
STARTED_ID = "vt000000-0000-4000-8000-000000000001"

#: name -> (status, result, task_id, ready)
MEANINGS: dict[str, tuple[str, Any, str, bool]] = {
    "result_SUCCESS.json": (
        "SUCCESS", 9, "e4000000-0000-4000-8000-000000000004", True),
    "result_SUCCESS_unicode_dict.json": (
        "SUCCESS", {"args": ["hé", 1], "kwargs": {"k": [1, 2]}},
        "e4100000-0000-4000-8000-000000000041", True),
    "result_SUCCESS_extended.json": ("SUCCESS", "slept 3", STARTED_ID, True),
    "result_RETRY_then_SUCCESS.json": ("SUCCESS", 70, RETRIED, True),
    "result_STARTED_extended.json": (
        "STARTED", {"pid": 11340, "hostname": "B@probe"}, STARTED_ID, False),
    "result_PROGRESS_custom_state.json": (
        "PROGRESS", {"done": 3, "total": 10}, "e8000000-0000-4000-8000-000000000008", False),
    "result_FAILURE_builtin.json": (
        "FAILURE",
        {"exc_type": "ValueError", "exc_message": ["boom ☃"], "exc_module": "builtins"},
        "e5000000-0000-4000-8000-000000000005", True),
    "result_FAILURE_custom.json": (
        "FAILURE",
        {"exc_type": "ProbeError", "exc_message": ["custom", 42], "exc_module": "probeapp"},
        "e6000000-0000-4000-8000-000000000006", True),
    "result_RETRY.json": (
        "RETRY",
        {"exc_type": "KeyError", "exc_message": ["transient 7"], "exc_module": "builtins"},
        RETRIED, False),
    "result_expired_message.json": (
        "REVOKED",
        {"exc_type": "TaskRevokedError", "exc_message": ["expired"],
         "exc_module": "celery.exceptions"},
        "e9000000-0000-4000-8000-000000000009", True),
    "result_unknown_task.json": (
        "FAILURE",
        {"exc_type": "NotRegistered", "exc_message": ["probe.no_such_task"],
         "exc_module": "celery.exceptions"},
        "ea000000-0000-4000-8000-00000000000a", True),
}


def test_every_result_vector_is_listed() -> None:
    on_disk = {p.name for p in VECTORS.glob("result_*.json")} - {"result_backend_values.json"}
    assert on_disk == set(MEANINGS)


@pytest.mark.parametrize("name", sorted(MEANINGS))
def test_decode_reads_status_result_and_id(name: str) -> None:
    status, value, task_id, ready = MEANINGS[name]
    meta = results.decode(raw(name))
    assert (meta.status, meta.result, meta.task_id, meta.ready) == (status, value, task_id, ready)
    stored = load(name)
    assert (meta.traceback, meta.children, meta.date_done) == (
        stored["traceback"], stored["children"], stored["date_done"])
    # Celery stamps date_done exactly when the state is final.
    assert (meta.date_done is not None) == ready


@pytest.mark.parametrize(
    "name", sorted(n for n, (status, *_) in MEANINGS.items() if status in results.EXCEPTION_STATES)
)
def test_exception_states_name_the_remote_exception(name: str) -> None:
    _status, value, _task_id, _ready = MEANINGS[name]
    meta = results.decode(raw(name))
    assert meta.exception == (value["exc_type"], value["exc_module"], value["exc_message"])


def test_failure_traceback_is_kept() -> None:
    meta = results.decode(raw("result_FAILURE_builtin.json"))
    assert meta.traceback is not None
    assert meta.traceback.endswith("ValueError: boom ☃\n")


def test_retry_children_are_kept() -> None:
    meta = results.decode(raw("result_RETRY.json"))
    assert meta.children == [[[RETRIED, None], None]]


def test_ready_and_exception_states_are_celerys() -> None:
    ready, exceptional = results.READY_STATES, results.EXCEPTION_STATES
    assert ready == {"SUCCESS", "FAILURE", "REVOKED"}
    assert exceptional == {"FAILURE", "RETRY", "REVOKED"}
    for state in ("PENDING", "STARTED", "RETRY", "PROGRESS", "success"):
        assert not results.ResultMeta(status=state, task_id="t").ready, state


def test_a_plain_string_exc_message_is_read_as_one_argument() -> None:
    """SPEC §6: Celery accepts ``exc_message`` as a plain string too."""
    meta = results.decode(json.dumps({
        "status": "FAILURE", "task_id": "t",
        "result": {"exc_type": "KeyError", "exc_module": "builtins", "exc_message": "gone"},
    }))
    assert meta.exception == ("KeyError", "builtins", ["gone"])


def test_a_result_without_task_id_is_refused() -> None:
    """Celery's ``get()`` needs ``task_id`` (SPEC §6), so it is not optional here either."""
    with pytest.raises(PayloadError):
        results.decode(b'{"status": "SUCCESS", "result": 1}')


# --- re-encoding ------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(MEANINGS))
def test_reencode_writes_celerys_fields_in_celerys_order(name: str) -> None:
    stored = load(name)
    assert list(celery_core(stored)) == CELERY_FIELDS  # the premise, from the capture
    ours = json.loads(results.encode(results.decode(raw(name))))
    assert list(celery_core(ours)) == CELERY_FIELDS
    assert celery_core(ours) == celery_core(stored)
    # Optional fields may be dropped (Relier does not need them), never altered or invented.
    assert {k: v for k, v in ours.items() if k in CELERY_OPTIONAL}.items() <= stored.items()
    assert set(ours) <= set(stored)


# --- what Relier writes -----------------------------------------------------------------


def written(meta: results.ResultMeta) -> dict[str, Any]:
    """Our stored value, parsed, after checking its shape."""
    value: dict[str, Any] = json.loads(results.encode(meta))
    assert list(value) == CELERY_FIELDS
    if value["date_done"] is not None:
        assert datetime.fromisoformat(value["date_done"]).utcoffset() is not None
    return value


def test_failure_of_a_builtin_matches_celery() -> None:
    try:
        raise ValueError("boom ☃")
    except ValueError as exc:
        meta = results.failure("t-1", exc)
    ours = written(meta)
    celery = load("result_FAILURE_builtin.json")
    assert ours["result"] == celery["result"] == {
        "exc_type": "ValueError", "exc_message": ["boom ☃"], "exc_module": "builtins"}
    assert list(ours["result"]) == list(celery["result"])
    assert (ours["status"], ours["task_id"], ours["children"]) == ("FAILURE", "t-1", [])
    assert ours["traceback"].startswith("Traceback (most recent call last):")
    assert ours["traceback"].endswith("ValueError: boom ☃\n")


class ProbeError(Exception):
    pass


class Opaque:
    def __repr__(self) -> str:
        return "<opaque>"


def test_failure_of_a_custom_exception_has_celerys_shape() -> None:
    """Like result_FAILURE_custom.json: the class name, its module, and its args."""
    meta = results.failure("t-2", ProbeError("custom", 42, Opaque()), tb=None)
    assert written(meta)["result"] == {
        "exc_type": "ProbeError",
        # An argument JSON cannot hold is stored as its repr, as Celery does.
        "exc_message": ["custom", 42, "<opaque>"],
        "exc_module": __name__,
    }


def test_revoked_for_expiry_matches_celery() -> None:
    ours = written(results.revoked("t-3", "expired"))
    celery = load("result_expired_message.json")
    assert date_done_and_id_removed(ours) == date_done_and_id_removed(celery)
    assert list(ours["result"]) == list(celery["result"])
    assert ours["task_id"] == "t-3"


def test_not_registered_matches_celery() -> None:
    ours = written(results.failure_from(
        "t-4", "NotRegistered", "celery.exceptions", ["probe.no_such_task"], None))
    assert date_done_and_id_removed(ours) == date_done_and_id_removed(
        load("result_unknown_task.json"))


def test_success_matches_celery() -> None:
    ours = written(results.success("t-5", 9))
    assert date_done_and_id_removed(ours) == date_done_and_id_removed(
        load("result_SUCCESS.json"))


# --- the backend values as they sat in Redis ----------------------------------------------

BACKEND: dict[str, Any] = load("result_backend_values.json")


@pytest.mark.parametrize("case", sorted(BACKEND))
def test_backend_values_decode_under_their_key(case: str) -> None:
    entry = BACKEND[case]
    if entry["raw"] is None:
        # ignore_result=True: nothing is stored, and a missing key reads as PENDING.
        assert entry["ttl"] == -2
        assert results.PENDING not in results.READY_STATES
        return
    meta = results.decode(entry["raw"])
    assert keys.result(meta.task_id) == entry["key"]
    assert 0 < entry["ttl"] <= 86400
    assert meta == results.decode(raw(f"result_{case}.json"))


def _snapshot_results() -> list[tuple[str, str]]:
    seen: dict[tuple[str, str], None] = {}
    for moment in load("worker_snapshots.json").values():
        for key, entry in moment["db1"].items():
            if key.startswith("celery-task-meta-"):
                seen[(key, entry["value"])] = None
    return list(seen)


@pytest.mark.parametrize(("key", "value"), _snapshot_results())
def test_every_result_in_the_worker_snapshots_decodes(key: str, value: str) -> None:
    meta = results.decode(value)
    assert keys.result(meta.task_id) == key
    assert meta.status in {"SUCCESS", "FAILURE", "RETRY", "REVOKED"}
