"""A real replicated Valkey for tests: one primary, two replicas, three Sentinels.

What the ``replicated`` mode runs, on free loopback ports and with the
lab's own binary (valkey-server; ``--sentinel`` makes it a Sentinel, which
needs a config file of its own that it may rewrite). No persistence: the
replicas are the copies. The block starts only once every replica has
synced with the primary and every Sentinel names that primary, sees both
replicas and the two other Sentinels (so a failover can be agreed on).
"""

from __future__ import annotations

import signal
import subprocess
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from sessions_lab.cluster.binaries import find_binary
from sessions_lab.modes import SENTINEL_SERVICE
from sessions_lab.waiting import wait_until
from tests.redis_server import free_port, stop

HOST = "127.0.0.1"
READY_WITHIN = 30  # seconds: Sentinels find each other through hello messages sent every 2 s


@dataclass(frozen=True)
class Node:
    """One server of the topology: a Valkey (primary or replica) or a Sentinel."""

    name: str
    port: int
    process: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"redis://{HOST}:{self.port}/0"

    def client(self, timeout: float = 1) -> redis.Redis:
        """A client that gives up after ``timeout`` seconds, and tries once."""
        return redis.Redis(
            HOST,
            self.port,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            retry=Retry(NoBackoff(), 0),
        )

    def info(self, section: str) -> dict:
        with self.client() as client:
            return client.info(section)


@dataclass(frozen=True)
class Replication:
    """The running topology: what a test points the engine at, and what it may break."""

    primary: Node  # as started: a failover makes one of the replicas primary
    replicas: tuple[Node, ...]
    sentinels: tuple[Node, ...]
    service: str = SENTINEL_SERVICE

    @property
    def servers(self) -> tuple[Node, ...]:
        return (self.primary, *self.replicas)

    def env(self, replica: Node | None = None, replication: str = "async") -> dict[str, str]:
        """The ``replicated`` mode's environment: these Sentinels, ``replica`` (the first)."""
        return {
            "REDIS_SENTINELS": ",".join(f"{HOST}:{node.port}" for node in self.sentinels),
            "REDIS_SENTINEL_SERVICE": self.service,
            "REDIS_REPLICA_URL": (replica or self.replicas[0]).url,
            "SESSION_REPLICATION": replication,
        }

    def current_primary(self) -> Node | None:
        """The server a Sentinel names primary now, if one answers and names a running one."""
        for sentinel in self.sentinels:
            try:
                with sentinel.client() as client:
                    address = client.sentinel_get_master_addr_by_name(self.service)
            except redis.RedisError:
                continue
            if address:
                return next((n for n in self.servers if n.port == int(address[1])), None)
        return None

    def flush(self) -> None:
        """Empty the primary, and wait (a little) for the replicas to have emptied too."""
        primary = self.current_primary()
        if primary is None or primary.process.poll() is not None:
            return
        with primary.client() as client:
            client.pipeline(transaction=False).flushdb().wait(len(self.replicas), 1000).execute()

    @contextmanager
    def paused(self, *nodes: Node) -> Iterator[None]:
        """SIGSTOP ``nodes`` for the block: they accept connections but answer nothing."""
        for node in nodes:
            node.process.send_signal(signal.SIGSTOP)
        try:
            yield
        finally:
            for node in nodes:
                node.process.send_signal(signal.SIGCONT)

    def synced(self) -> bool:
        """Every replica's link to the primary is up (its first full sync done)."""
        try:
            return all(
                node.info("replication").get("master_link_status") == "up" for node in self.replicas
            )
        except redis.RedisError:
            return False

    def ready(self) -> bool:
        """Synced, and every Sentinel names the primary, sees the replicas and the others."""
        try:
            return self.synced() and all(self._sentinel_ready(node) for node in self.sentinels)
        except redis.RedisError:
            return False

    def _sentinel_ready(self, sentinel: Node) -> bool:
        with sentinel.client() as client:
            address = client.sentinel_get_master_addr_by_name(self.service)
            replicas = client.sentinel_slaves(self.service)
            others = client.sentinel_sentinels(self.service)
        return (
            address is not None
            and int(address[1]) == self.primary.port
            and sum(not r["is_sdown"] for r in replicas) == len(self.replicas)
            and len(others) == len(self.sentinels) - 1
        )


def _start(name: str, argv: list[str], workdir: Path, stack: ExitStack) -> subprocess.Popen[bytes]:
    with (workdir / f"{name}.log").open("wb") as log:
        process = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT
        )
    stack.callback(stop, process)
    return process


def _server(name: str, workdir: Path, stack: ExitStack, primary: int | None = None) -> Node:
    port = free_port()
    data = workdir / name
    data.mkdir()
    argv = [
        *(str(find_binary("redis").path), "--port", str(port), "--bind", HOST),
        *("--dir", str(data), "--save", "", "--appendonly", "no"),
        # Start a full sync at once, rather than wait 5 s for more replicas to join.
        *("--repl-diskless-sync-delay", "0"),
    ]
    if primary is not None:
        argv += ["--replicaof", HOST, str(primary)]
    return Node(name, port, _start(name, argv, workdir, stack))


def _sentinel(name: str, workdir: Path, stack: ExitStack, primary: int, service: str) -> Node:
    port = free_port()
    data = workdir / name
    data.mkdir()
    config = data / "sentinel.conf"  # Sentinel rewrites it as it learns: a file of its own
    config.write_text(
        f"port {port}\nbind {HOST}\ndir {data}\n"
        f"sentinel monitor {service} {HOST} {primary} 2\n"
        f"sentinel down-after-milliseconds {service} 1000\n"
        f"sentinel failover-timeout {service} 5000\n"
        f"sentinel parallel-syncs {service} 1\n"
    )
    argv = [str(find_binary("redis").path), str(config), "--sentinel"]
    return Node(name, port, _start(name, argv, workdir, stack))


@contextmanager
def valkey_replication(workdir: Path, replicas: int = 2) -> Iterator[Replication]:
    """Run the topology until the block ends, then stop every process (SIGTERM, then KILL)."""
    with ExitStack() as stack:
        primary = _server("primary", workdir, stack)
        topology_replicas = tuple(
            _server(f"replica{n}", workdir, stack, primary=primary.port)
            for n in range(1, replicas + 1)
        )
        every = [primary, *topology_replicas]

        def up(condition) -> None:
            if not wait_until(
                lambda: condition() or any(n.process.poll() is not None for n in every),
                READY_WITHIN,
            ) or any(n.process.poll() is not None for n in every):
                logs = "\n".join(
                    f"--- {n.name}\n{(workdir / f'{n.name}.log').read_text()[-2000:]}"
                    for n in every
                )
                raise RuntimeError(f"the replicated Valkey did not come up:\n{logs}")

        topology = Replication(primary, topology_replicas, ())
        up(topology.synced)
        # Then the Sentinels (stopped first, so they fail over no primary being
        # stopped): they find both replicas in the primary's first INFO.
        sentinels = tuple(
            _sentinel(f"sentinel{n}", workdir, stack, primary.port, SENTINEL_SERVICE)
            for n in range(1, 4)
        )
        every += sentinels
        topology = Replication(primary, topology_replicas, sentinels)
        up(topology.ready)
        yield topology
