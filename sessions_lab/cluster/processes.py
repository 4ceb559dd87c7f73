"""What a supervised process is, and how to look at one through ``/proc``.

A ``ProcessSpec`` is everything needed to start a server again the same way
(``start app2`` after ``kill app2``). Each child runs in a process group of
its own, so a signal reaches the whole of it: gunicorn's master and workers,
nginx's master and workers, PostgreSQL's postmaster and backends.

``kill(pid, 0)`` succeeds on a zombie, and a killed process can stay one for
over a second here, so liveness is read from ``/proc/PID/stat`` instead.
"""

from __future__ import annotations

import contextlib
import os
import signal
from dataclasses import dataclass, field
from pathlib import Path

# Which check says a process is ready: "http:/path" (200 expected), "redis"
# (PING), "tcp" (accepts connections).
HealthCheck = str


@dataclass(frozen=True)
class ProcessSpec:
    """How to start one server of the lab, and how it stops."""

    name: str  # app1, nginx, redis, postgres
    role: str  # app, nginx, redis, postgres
    argv: list[str]
    cwd: Path
    log: Path
    port: int
    health: HealthCheck
    env: dict[str, str] = field(default_factory=dict)
    user: str | None = None  # run as this user (PostgreSQL refuses root)
    # The signal for a graceful stop: PostgreSQL's SIGTERM waits for every
    # client to disconnect, SIGINT ("fast") disconnects them.
    stop_signal: int = signal.SIGTERM
    # The signal for `down`, where nothing in flight matters any more.
    quick_stop_signal: int = signal.SIGTERM


def _stat_fields(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    # The command name (field 2) may hold spaces and parentheses: the fields
    # that follow start after the last ')'.
    return text[text.rindex(")") + 2 :].split()


def proc_state(pid: int) -> str | None:
    """The state letter of ``pid`` (R, S, T, Z, …), or None if there is no such process."""
    fields = _stat_fields(pid)
    return fields[0] if fields else None


def proc_start_time(pid: int) -> int | None:
    """When ``pid`` started (clock ticks since boot): tells a reused pid from ours."""
    fields = _stat_fields(pid)
    return int(fields[19]) if fields else None


def proc_parent(pid: int) -> int | None:
    fields = _stat_fields(pid)
    return int(fields[1]) if fields else None


def is_alive(pid: int, start_time: int | None = None) -> bool:
    """Whether ``pid`` runs (or is stopped), is no zombie, and is the process we started."""
    fields = _stat_fields(pid)
    if not fields or fields[0] in ("Z", "X"):
        return False
    return start_time is None or int(fields[19]) == start_time


def children_of(pid: int) -> list[int]:
    """The live child processes of ``pid`` (nginx's workers, for a reload)."""
    found = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            child = int(entry.name)
            if proc_parent(child) == pid and is_alive(child):
                found.append(child)
    return found


def group_members(pgid: int) -> list[int]:
    """The live processes of process group ``pgid``."""
    found = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            fields = _stat_fields(int(entry.name))
            if fields and int(fields[2]) == pgid and fields[0] not in ("Z", "X"):
                found.append(int(entry.name))
    return found


def signal_group(pgid: int, signum: int) -> None:
    """Send ``signum`` to every process of group ``pgid``; a group already gone is fine."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signum)


def signal_name(signum: int) -> str:
    return signal.Signals(signum).name
