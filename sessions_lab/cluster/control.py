"""The control protocol between the supervisor and its clients.

The supervisor listens on a unix socket; a client (the CLI through
``Cluster``, the dashboard in-process) sends one request and reads one reply.
Both sides import this module, so the address, the framing, the action names
and the signals offered are written down once.

Framing: one JSON object per line each way. A request is
``{"action": "kill", "target": "app2", "signal": "KILL"}``; a reply is
``{"ok": true, "message": "..."}`` or ``{"ok": false, "error": "..."}``, the
error written for the person who typed the command.
"""

from __future__ import annotations

import hashlib
import json
import socket
from enum import StrEnum
from pathlib import Path
from typing import Any

from sessions_lab.cluster.config import RunFolder

# The signals the lab offers (``kill --signal``, the dashboard's buttons):
# a crash, a graceful stop, a hang. The supervisor would send any signal, so
# every entry point checks against this list.
SIGNALS = ("KILL", "TERM", "STOP")

# A graceful stop gets this long before SIGKILL.
STOP_TIMEOUT = 3.0


class Action(StrEnum):
    """What a client can ask the supervisor."""

    KILL = "kill"
    START = "start"
    RESTART = "restart"
    DRAIN = "drain"
    ADD = "add"  # scale out by one instance
    DOWN = "down"
    PING = "ping"  # the supervisor's phase; allowed while it starts


def socket_address(run: RunFolder) -> str:
    """The supervisor's socket, in the abstract namespace: it vanishes with the
    supervisor (no stale file to mistake for a running lab) and has no path-length
    limit, however deep the run folder is."""
    digest = hashlib.sha1(str(run.root).encode()).hexdigest()[:20]  # noqa: S324 - a name
    return f"\0sessions-lab-{digest}"


def encode(message: dict[str, Any]) -> bytes:
    """One request or reply, framed."""
    return json.dumps(message).encode() + b"\n"


def read_message(connection: socket.socket) -> dict[str, Any] | None:
    """The next framed message on ``connection``; None if the peer closed first."""
    line = connection.makefile("rb").readline()
    return json.loads(line) if line else None


def connect(run: RunFolder, timeout: float) -> socket.socket | None:
    """A connection to the supervisor of ``run``, or None when none listens."""
    connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    connection.settimeout(timeout)
    try:
        connection.connect(socket_address(run))
    except OSError:
        connection.close()
        return None
    return connection


def listen(run: RunFolder) -> socket.socket:
    """The supervisor's side: a listening socket at ``socket_address(run)``."""
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(socket_address(run))
    listener.listen(16)
    return listener


def tail(path: Path, lines: int = 20) -> str:
    """The last ``lines`` lines of a log, for an error message; empty if unreadable."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])
