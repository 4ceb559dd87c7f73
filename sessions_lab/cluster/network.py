"""Ports and probes on loopback: is a port free, is a server answering.

The lab only ever talks to 127.0.0.1. Probes are short and never raise: a
server that does not answer within a fraction of a second is reported as
unhealthy, not waited for.
"""

from __future__ import annotations

import http.client
import socket

LOOPBACK = "127.0.0.1"


def port_is_free(port: int, host: str = LOOPBACK) -> bool:
    """Whether a server could bind ``host:port`` now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        # Like the servers themselves: a port in TIME_WAIT is still usable.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def free_port(host: str = LOOPBACK) -> int:
    """A port nobody listens on, chosen by the kernel."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


def choose_ports(preferred: list[int], taken: set[int], host: str = LOOPBACK) -> list[int]:
    """One free port per entry of ``preferred``: the preferred one when free, else any."""
    chosen: list[int] = []
    for port in preferred:
        if port in taken or port in chosen or not port_is_free(port, host):
            port = free_port(host)
            while port in taken or port in chosen:
                port = free_port(host)
        chosen.append(port)
    return chosen


def http_ok(port: int, path: str, timeout: float = 0.5, host: str = LOOPBACK) -> bool:
    """Whether ``GET path`` on ``host:port`` answers 200 within ``timeout``."""
    connection = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        connection.request("GET", path, headers={"Host": f"{host}:{port}"})
        return connection.getresponse().status == 200
    except (OSError, http.client.HTTPException):
        return False
    finally:
        connection.close()


def _ask(port: int, request: bytes, size: int, timeout: float, host: str) -> bytes:
    """The first ``size`` bytes the server on ``host:port`` sends back to ``request``.

    Empty when nothing answered in time (refused, reset, closed, silent): every
    probe reads an empty reply as "not healthy", so none of them needs a path
    of its own for a server that is not there.
    """
    try:
        with socket.create_connection((host, port), timeout=timeout) as connection:
            connection.sendall(request)
            return connection.recv(size)
    except OSError:
        return b""


def redis_ok(port: int, timeout: float = 0.5, host: str = LOOPBACK) -> bool:
    """Whether a Redis-protocol server on ``host:port`` answers PING."""
    return _ask(port, b"PING\r\n", 32, timeout, host).startswith(b"+PONG")


def memcached_ok(port: int, timeout: float = 0.5, host: str = LOOPBACK) -> bool:
    """Whether a memcached on ``host:port`` answers ``version``."""
    return _ask(port, b"version\r\n", 32, timeout, host).startswith(b"VERSION ")


def redis_role(port: int, timeout: float = 0.5, host: str = LOOPBACK) -> str | None:
    """What a Valkey server on ``host:port`` says it is (``ROLE``): master, slave, or None."""
    reply = _ask(port, b"ROLE\r\n", 64, timeout, host).split(b"\r\n")
    # *N, $len, the role's name: master, slave (a replica) or sentinel.
    return reply[2].decode("ascii", "replace") if len(reply) > 2 else None


def replica_synced(port: int, timeout: float = 0.5, host: str = LOOPBACK) -> bool:
    """Whether the Valkey replica on ``host:port`` is linked to its primary and has its data,
    or has been promoted (a primary now: it has every session there is)."""
    reply = _ask(port, b"INFO replication\r\n", 4096, timeout, host)
    return b"master_link_status:up" in reply or b"role:master" in reply


def tcp_open(port: int, timeout: float = 0.5, host: str = LOOPBACK) -> bool:
    """Whether something accepts TCP connections on ``host:port``."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False
