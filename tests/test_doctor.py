"""`relier doctor` against private servers: one configured to evict keys, one sound."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import redis

from relier.embedded import EmbeddedServer
from tests.conftest import ROOT


def doctor(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "relier", "doctor", *args, "--redis-url", url],
                          capture_output=True, text=True, timeout=60, cwd=ROOT,
                          env={**os.environ, "COLUMNS": "200"})


def test_an_evicting_redis_is_flagged_and_a_sound_one_passes() -> None:
    with EmbeddedServer(appendonly=True,
                        extra_args=("--maxmemory-policy", "allkeys-lru")) as lru:
        found = doctor(lru.url)
        assert found.returncode == 1, found.stdout + found.stderr
        assert "maxmemory-policy" in found.stdout and "allkeys-lru" in found.stdout
        assert "fix: CONFIG SET maxmemory-policy noeviction" in found.stdout
        report = json.loads(doctor(lru.url, "--json").stdout)
        [check] = [c for c in report["checks"] if c["name"] == "maxmemory-policy"]
        assert check["status"] == "warn" and report["healthy"] is False

        client = redis.Redis.from_url(lru.url)
        client.config_set("maxmemory-policy", "noeviction")
        client.close()
        sound = doctor(lru.url)
        assert sound.returncode == 0, sound.stdout + sound.stderr
        assert "all good" in sound.stdout
        report = json.loads(doctor(lru.url, "--json").stdout)
        assert report["healthy"] is True
        assert {c["status"] for c in report["checks"]} <= {"ok", "info"}
        assert {"version", "maxmemory-policy", "persistence", "latency", "scripts",
                "workers"} <= {c["name"] for c in report["checks"]}


def test_no_persistence_and_a_queue_nobody_consumes_are_flagged(redis_url: str) -> None:
    from tests.taskapps import observe

    observe.app.configure(redis_url=redis_url)
    try:
        observe.ok.options(queue="orphaned").push(1)
    finally:
        observe.app.close()
    report = json.loads(doctor(redis_url, "--json").stdout)
    by_name = {c["name"]: c for c in report["checks"]}
    assert by_name["persistence"]["status"] == "warn"  # the test server saves nothing
    assert "no persistence" in by_name["persistence"]["detail"]
    assert by_name["queue orphaned"]["status"] == "warn"
    assert "no live worker consumes it" in by_name["queue orphaned"]["detail"]
    assert by_name["workers"]["status"] == "warn"
