"""Real memcached nodes for tests, started on free loopback ports (as ``MEMCACHED_SERVERS``)."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from contextlib import AbstractContextManager, ExitStack, contextmanager
from pathlib import Path

from sessions_lab.cluster.binaries import find_binary
from sessions_lab.cluster.memcached import memcached_argv
from sessions_lab.cluster.network import memcached_ok
from sessions_lab.waiting import wait_until
from tests import redis_server
from tests.redis_server import free_port, stop

# The nodes running now, by "host:port": what ``paused`` signals.
RUNNING: dict[str, subprocess.Popen[bytes]] = {}


@contextmanager
def memcached_node(workdir: Path) -> Iterator[str]:
    """Run one memcached as the lab does until the block ends; yields its ``host:port``."""
    port = free_port()
    binary = find_binary("memcached")
    log_path = workdir / f"memcached-{port}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            memcached_argv(binary, "127.0.0.1", port),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    server = f"127.0.0.1:{port}"
    try:
        if not wait_until(lambda: memcached_ok(port) or process.poll() is not None, 10):
            raise RuntimeError(f"{binary.path} did not answer: {log_path.read_text()}")
        if process.poll() is not None:
            raise RuntimeError(f"{binary.path} did not start: {log_path.read_text()}")
        RUNNING[server] = process
        yield server
    finally:
        RUNNING.pop(server, None)
        stop(process)


@contextmanager
def memcached_servers(workdir: Path, count: int = 3) -> Iterator[str]:
    """``count`` nodes; yields them as ``MEMCACHED_SERVERS`` lists them (comma-separated)."""
    with ExitStack() as stack:
        yield ",".join(stack.enter_context(memcached_node(workdir)) for _ in range(count))


def paused(server: str) -> AbstractContextManager[None]:
    """SIGSTOP the node ``server`` for the block, as ``sessions-lab kill memcached2 --signal
    STOP``: it still accepts connections (the kernel does) but answers nothing."""
    return redis_server.paused(server, RUNNING)
