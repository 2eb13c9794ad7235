"""``replica_acks``: a push returns only once that many replicas confirmed it (``WAIT``),
against a real master and replica; a replica that does not answer makes the push raise
``ReplicationTimeout`` within the timeout, with the tasks still queued on the master."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator

import pytest
import redis

from relier import App, ConfigurationError, ReplicationTimeout
from relier.embedded import EmbeddedServer
from relier.store import keys
from tests.polling import poll

app = App()


@app.task(name="replicated.add", queue="default")
async def add(x: int, y: int) -> int:
    return x + y


@app.task(name="replicated.charge", queue="default", idempotent=True)
async def charge(order: str) -> str:
    return order


class Pair:
    """A master and one replica that follows it."""

    def __init__(self) -> None:
        self.master = EmbeddedServer(databases=1)
        self.replica = EmbeddedServer(databases=1)

    def start(self) -> Pair:
        self.master.start()
        self.replica.extra_args = ("--replicaof", "127.0.0.1", str(self.master.port))
        self.replica.start()
        poll(self._synced, 30, "the replica to sync", every=0.05)
        return self

    def _synced(self) -> bool:
        with redis.Redis(port=self.replica.port) as client:
            return client.info("replication").get("master_link_status") == "up"

    def pause_replica(self) -> None:
        assert self.replica.process is not None
        os.kill(self.replica.process.pid, signal.SIGSTOP)

    def resume_replica(self) -> None:
        assert self.replica.process is not None
        os.kill(self.replica.process.pid, signal.SIGCONT)

    def close(self) -> None:
        self.resume_replica()
        self.replica.close()
        self.master.close()


@pytest.fixture(scope="module")
def pair() -> Iterator[Pair]:
    started = Pair().start()
    yield started
    started.close()


@pytest.fixture
def master(pair: Pair) -> Iterator[redis.Redis]:
    client = redis.Redis(port=pair.master.port)
    client.flushall()
    app.configure(redis_url=pair.master.url, replica_acks=1, replica_ack_timeout=0.5)
    yield client
    app.close()
    client.close()


def test_a_push_returns_once_the_replica_has_it(pair: Pair, master: redis.Redis) -> None:
    handle = add.push(1, 2)
    with redis.Redis(port=pair.replica.port) as replica:
        # WAIT returned 1: the replica had the message when push returned.
        assert replica.llen("default") == 1
        assert handle.id.encode() in replica.lindex("default", 0)


async def test_apush_waits_too(pair: Pair, master: redis.Redis) -> None:
    await add.apush(2, 3)
    with redis.Redis(port=pair.replica.port) as replica:
        assert replica.llen("default") == 1
    await app.aclose()


def test_a_silent_replica_makes_the_push_raise_with_the_task_still_queued(
    pair: Pair, master: redis.Redis
) -> None:
    pair.pause_replica()
    try:
        started = time.monotonic()
        with pytest.raises(ReplicationTimeout) as refused:
            add.push(3, 4)
        assert time.monotonic() - started < 10, "bounded by replica_ack_timeout"
        assert (refused.value.wanted, refused.value.confirmed) == (1, 0)
        (task_id,) = refused.value.task_ids
        assert master.llen("default") == 1, "queued on the master all the same"
        assert task_id.encode() in master.lindex("default", 0)
        assert "idempotency key" in str(refused.value)
    finally:
        pair.resume_replica()


def test_a_duplicate_idempotent_push_wrote_nothing_so_needs_no_replica(
    pair: Pair, master: redis.Redis
) -> None:
    first = charge.push("o-1")
    pair.pause_replica()
    try:
        again = charge.push("o-1")  # answered from the record: nothing new to replicate
        assert again.id == first.id
        assert master.llen("default") == 1
    finally:
        pair.resume_replica()
    assert len(master.keys(keys.idempotency("replicated.charge", "*"))) == 1


@pytest.mark.parametrize("value", [-1, "2", 1.5, True])
def test_a_bad_replica_acks_is_refused_in_one_line(pair: Pair, master: redis.Redis,
                                                    value: object) -> None:
    app.configure(replica_acks=value)
    with pytest.raises(ConfigurationError, match="replica_acks must be a whole number"):
        add.push(1, 1)
    assert master.llen("default") == 0
