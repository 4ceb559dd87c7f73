"""A health check counts only when the child itself listens on its port.

Two labs on one machine prefer the same ports. If another lab's server takes
a port between ``up`` choosing it and this lab's child binding it, the
impostor answers every health check; ``listens_on`` tells the two apart.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import pytest

from sessions_lab.cluster.network import free_port, tcp_open
from sessions_lab.cluster.processes import listens_on
from sessions_lab.waiting import wait_until

pytestmark = pytest.mark.cluster

SERVE = "import socket, sys, time; s = socket.socket(); s.bind(('127.0.0.1', int(sys.argv[1]))); s.listen(); time.sleep(60)"


@pytest.fixture
def listener() -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    """A process of ours listening on a port, as a server child would."""
    port = free_port()
    server = subprocess.Popen([sys.executable, "-c", SERVE, str(port)])
    try:
        assert wait_until(lambda: tcp_open(port), 10)
        yield server, port
    finally:
        server.kill()
        server.wait(timeout=10)


def test_the_process_that_listens_is_recognised(listener) -> None:
    server, port = listener
    assert listens_on(server.pid, port)


def test_another_process_on_the_port_is_not_the_child(listener) -> None:
    server, port = listener
    # A sibling that listens elsewhere: the port's health would answer, yet not for it.
    other_port = free_port()
    sibling = subprocess.Popen([sys.executable, "-c", SERVE, str(other_port)])
    try:
        assert wait_until(lambda: tcp_open(other_port), 10)
        assert listens_on(sibling.pid, other_port)
        assert not listens_on(sibling.pid, port)
        assert not listens_on(server.pid, other_port)
    finally:
        sibling.kill()
        sibling.wait(timeout=10)


def test_a_child_listening_on_another_port_does_not_count(listener) -> None:
    server, _ = listener
    assert not listens_on(server.pid, free_port())


def test_a_process_that_is_gone_listens_on_nothing() -> None:
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait(timeout=10)
    assert not listens_on(gone.pid, 1)
