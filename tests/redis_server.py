"""A real Redis-compatible server for tests, started on a free loopback port."""

from __future__ import annotations

import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import redis

from sessions_lab.cluster.binaries import find_binary

# The servers running now, by URL: what ``paused`` signals.
RUNNING: dict[str, subprocess.Popen[bytes]] = {}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def redis_server(workdir: Path) -> Iterator[str]:
    """Run valkey/redis-server until the block ends; yields its ``redis://`` URL."""
    port = free_port()
    binary = find_binary("redis")
    log = (workdir / "redis.log").open("wb")
    process = subprocess.Popen(
        [
            str(binary.path),
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(workdir),
        ],
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"redis://127.0.0.1:{port}/0"
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                redis.Redis.from_url(url, socket_timeout=1).ping()
                break
            except redis.ConnectionError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(
                        f"{binary.path} did not start: {(workdir / 'redis.log').read_text()}"
                    ) from None
                time.sleep(0.02)
        RUNNING[url] = process
        yield url
    finally:
        RUNNING.pop(url, None)
        stop(process)
        log.close()


def stop(process: subprocess.Popen[bytes]) -> None:
    """End a server this module (or ``tests/memcached_server.py``) started: SIGTERM, then KILL."""
    process.send_signal(signal.SIGCONT)  # a paused server acts on nothing until it runs
    process.terminate()
    try:
        process.wait(timeout=5)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@contextmanager
def paused(url: str, running: dict[str, subprocess.Popen[bytes]] = RUNNING) -> Iterator[None]:
    """SIGSTOP the server at ``url`` for the block, as ``sessions-lab kill redis --signal STOP``.

    A paused server still accepts connections (the kernel does) but answers
    nothing: each command times out after the client's SOCKET_TIMEOUT, the
    hardest outage for a client to tell apart from a slow answer.
    """
    process = running[url]
    process.send_signal(signal.SIGSTOP)
    try:
        yield
    finally:
        process.send_signal(signal.SIGCONT)
