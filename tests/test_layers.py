"""Layers import downwards only, and only the store talks to Redis.

protocol (pure) <- store <- client (App, Task, producer, handle, lock, ...) <- runtime
<- observability <- cli, integrations, testing, demo. A small AST walk over relier/:
every ``import`` of a relier module is checked against the layer of the importer.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent / "relier"

#: Layer of each package (or top-level module); a module may import its own layer and
#: the layers below it. Top-level modules not listed are the client layer.
LAYERS = {"errors": 0, "protocol": 0, "store": 1, "runtime": 3, "observability": 4,
          "cli": 5, "cli_checks": 5, "cli_common": 5, "cli_dlq": 5, "cli_help": 5,
          "banner": 5, "__main__": 5, "integrations": 5,
          "testing": 5, "demo": 5}
CLIENT = 2

#: Upward imports still allowed, each with why. Shrink this list; never grow it.
KNOWN_UPWARD: set[tuple[str, str]] = set()
#: Modules outside relier/store that still import redis, each with why.
KNOWN_REDIS_IMPORTERS: set[str] = set()
#: The store's private modules: key names and the Lua sources. Nothing outside the store
#: imports them (callers use the typed calls), so a key's layout or a script's argument
#: order can change in one package. Modules still allowed to, each with why: none.
STORE_PRIVATE = ("relier.store.keys", "relier.store.scripts")
KNOWN_PRIVATE_IMPORTERS: dict[str, str] = {}
#: Redis commands as redis-py's client methods. Called outside relier/store, one of these
#: is a raw command sent around the seam. ``AMBIGUOUS`` names are also ordinary methods
#: (dict.get, Event.set, ...), so they count only on a receiver that reads as a client,
#: pipeline or subscription.
RAW_COMMANDS = frozenset({
    "hgetall", "hget", "hmget", "hset", "hdel", "hlen", "hincrby", "mget", "smembers",
    "sadd", "srem", "sismember", "scard", "zadd", "zrange", "zrangebyscore", "zcard",
    "zcount", "zscore", "zrem", "lrange", "llen", "lindex", "lpush", "rpush", "lrem",
    "brpop", "blmove", "lmove", "scan", "scan_iter", "pipeline", "memory_usage",
    "config_get", "execute_command", "pexpire", "pttl", "pubsub", "script_load",
    "script_exists", "evalsha", "incr", "flushdb", "flushall", "dbsize", "psubscribe",
})
AMBIGUOUS = frozenset({"get", "set", "delete", "exists", "info", "type", "ping", "publish",
                       "expire", "ttl", "keys", "subscribe", "get_message", "unlink"})
_CLIENTISH = ("client", "pipe", "redis", "pubsub")
#: Modules outside relier/store still allowed to send raw commands, each with why.
KNOWN_RAW_SENDERS: dict[str, str] = {
    # The demo's own tasks keep notes for the narration in keys of their own
    # (``demo:*``), as any user's task may use the App's client; no Relier key.
    "relier/demo/tasks.py": "the demo's own notes (demo:started, demo:charges)",
    "relier/demo/timeouts.py": "the demo's own notes (demo:soft-timeout, demo:attempts)",
    "relier/demo/runner.py": "reads the demo's own notes (demo:started)",
    "relier/demo/payments.py": "reads the demo's own notes (demo:charges)",
}


def _module(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _layer(module: str) -> int:
    head = module.split(".")[1] if "." in module else ""
    return LAYERS.get(head, CLIENT)


def _imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found |= {f"{node.module}.{a.name}" for a in node.names}
    return found


SOURCES = sorted(ROOT.rglob("*.py"))


def _allowed(importer: str, imported: str) -> bool:
    return any(importer == a and (imported == b or imported.startswith(b + "."))
               for a, b in KNOWN_UPWARD)


def test_layers_import_downwards_only() -> None:
    upward = []
    for path in SOURCES:
        importer = _module(path)
        for imported in _imports(path):
            if not imported.startswith("relier."):
                continue
            if _layer(imported) > _layer(importer) and not _allowed(importer, imported):
                upward.append(f"{importer} -> {imported}")
    assert not upward, "upward imports:\n" + "\n".join(sorted(upward))


def test_only_the_store_imports_redis() -> None:
    offenders = []
    for path in SOURCES:
        relative = path.relative_to(ROOT.parent).as_posix()
        if relative.startswith("relier/store/") or relative in KNOWN_REDIS_IMPORTERS:
            continue
        if any(name == "redis" or name.startswith("redis.") for name in _imports(path)):
            offenders.append(relative)
    assert not offenders, f"modules importing redis outside relier/store: {offenders}"


def test_no_module_outside_the_store_imports_its_keys_or_scripts() -> None:
    """Key names and script sources are the store's own: callers use typed calls."""
    offenders = []
    for path in SOURCES:
        importer = _module(path)
        if importer.startswith("relier.store") or importer in KNOWN_PRIVATE_IMPORTERS:
            continue
        for imported in _imports(path):
            if any(imported == p or imported.startswith(p + ".") for p in STORE_PRIVATE):
                offenders.append(f"{importer} -> {imported}")
    assert not offenders, "imports of the store's keys/scripts:\n" + "\n".join(
        sorted(offenders))


def _raw_commands(source: str) -> list[str]:
    """``receiver.command(`` calls in ``source`` that send a Redis command."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
            continue
        name = node.func.attr
        receiver = (ast.get_source_segment(source, node.func.value) or "").lower()
        if name in RAW_COMMANDS or (
                name in AMBIGUOUS and any(word in receiver for word in _CLIENTISH)):
            found.append(f"{receiver}.{name} (line {node.lineno})")
    return found


def test_no_raw_command_is_sent_outside_the_store() -> None:
    """Every Redis read and write outside relier/store goes through a store function."""
    offenders = []
    for path in SOURCES:
        relative = path.relative_to(ROOT.parent).as_posix()
        if relative.startswith("relier/store/") or relative in KNOWN_RAW_SENDERS:
            continue
        offenders += [f"{relative}: {call}"
                      for call in _raw_commands(path.read_text(encoding="utf-8"))]
    assert not offenders, "raw Redis commands outside relier/store:\n" + "\n".join(offenders)


def test_the_raw_command_check_sees_one() -> None:
    """The checker itself: raw commands are found, ordinary methods of the same name not."""
    source = ("client.hgetall('k')\nwith self._client.pipeline() as pipe:\n    pipe.get('k')\n"
              "headers.get('id')\nself._stopped.set()\n")
    assert [call.split(" ")[0] for call in _raw_commands(source)] == [
        "client.hgetall", "self._client.pipeline", "pipe.get"]


def test_lua_scripts_live_in_the_store_only() -> None:
    outside = [p for p in ROOT.rglob("*.lua") if "store" not in p.relative_to(ROOT).parts[:1]]
    assert not outside, f"Lua outside relier/store/lua: {outside}"


def test_no_script_is_run_outside_the_runner() -> None:
    """One way to run a script (by SHA, reloaded after NOSCRIPT): relier/store/runner.py."""
    offenders = [p.relative_to(ROOT.parent).as_posix() for p in SOURCES
                 if p.name != "runner.py" and any(word in p.read_text(encoding="utf-8")
                                                  for word in ("register_script", ".evalsha("))]
    assert not offenders, f"scripts run outside relier/store/runner.py: {offenders}"


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_relier_headers_are_named_in_headers_py_only(path: Path) -> None:
    if path.name == "headers.py":
        return
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if (isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant)
                and isinstance(node.value.value, str)
                and node.value.value.startswith("relier_")
                and any(isinstance(t, ast.Name) and t.id.endswith("_HEADER")
                        for t in node.targets)):
            pytest.fail(f"{path.name} names header {node.value.value!r}; "
                        "add it to relier/protocol/headers.py")


def test_the_layer_check_sees_a_violation(tmp_path: Path) -> None:
    """The checker itself: an upward import is reported (the tests above can fail)."""
    assert _layer("relier.protocol.message") < _layer("relier.store.broker") \
        < _layer("relier.app") < _layer("relier.runtime.executor") \
        < _layer("relier.observability.metrics") < _layer("relier.cli")
    bad = tmp_path / "bad.py"
    bad.write_text("from relier.runtime.executor import Executor\nimport redis.asyncio\n")
    assert {"relier.runtime.executor", "redis.asyncio"} <= _imports(bad)
