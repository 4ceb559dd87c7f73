"""What a supervised process is, and how to look at one (through psutil).

A ``ProcessSpec`` is everything needed to start a server again the same way
(``start app2`` after ``kill app2``). Each child runs in a process group of
its own, so a signal reaches the whole of it: gunicorn's master and workers,
nginx's master and workers, PostgreSQL's postmaster and backends.

``kill(pid, 0)`` succeeds on a zombie, and a killed process can stay one for
over a second here, so liveness is the process's state as psutil reads it:
a zombie counts as dead.
"""

from __future__ import annotations

import contextlib
import os
import signal
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from sessions_lab.waiting import wait_until

# Which check says a process is ready: "http:/path" (200 expected), "redis"
# (PING), "replica" (linked to its primary: INFO replication), "memcached"
# (version), "tcp" (accepts connections).
HealthCheck = str


@dataclass(frozen=True)
class ProcessSpec:
    """How to start one server of the lab, and how it stops."""

    name: str  # app1, nginx, redis, postgres, memcached1
    role: str  # app, nginx, redis, postgres, memcached
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


# A process that has ended but not been reaped yet still has a pid: it is dead.
_DEAD = (psutil.STATUS_ZOMBIE, psutil.STATUS_DEAD)

# Start times are seconds since the epoch, derived from the boot time, which
# moves when the wall clock is stepped: a margin keeps our own process ours
# after such a step. A reused pid would need the pid space to wrap within it.
_SAME_START = 1.0


def _process(pid: int) -> psutil.Process | None:
    if pid <= 0:  # 0 and negative pids name groups to kill(), not processes
        return None
    try:
        return psutil.Process(pid)
    except psutil.Error:
        return None


def proc_state(pid: int) -> str | None:
    """The state of ``pid`` in psutil's words (``psutil.STATUS_RUNNING``,
    ``STATUS_STOPPED``, ``STATUS_ZOMBIE``, …), or None if there is no such process."""
    process = _process(pid)
    if process is None:
        return None
    try:
        return str(process.status())
    except psutil.Error:
        return None


def is_paused(pid: int) -> bool:
    """Whether ``pid`` is stopped (SIGSTOP): alive, but acting on nothing."""
    return proc_state(pid) == psutil.STATUS_STOPPED


def proc_start_time(pid: int) -> float | None:
    """When ``pid`` started (seconds since the epoch): tells a reused pid from ours."""
    process = _process(pid)
    if process is None:
        return None
    try:
        return process.create_time()
    except psutil.Error:
        return None


def is_alive(pid: int, start_time: float | None = None) -> bool:
    """Whether ``pid`` runs (or is stopped), is no zombie, and is the process we started."""
    process = _process(pid)
    if process is None:
        return False
    try:
        if process.status() in _DEAD:
            return False
        return start_time is None or abs(process.create_time() - start_time) < _SAME_START
    except psutil.Error:
        return False


def children_of(pid: int) -> list[int]:
    """The live child processes of ``pid`` (nginx's workers, for a reload)."""
    process = _process(pid)
    if process is None:
        return []
    try:
        children = process.children()
    except psutil.Error:
        return []
    return [child.pid for child in children if is_alive(child.pid)]


def listens_on(pid: int, port: int) -> bool:
    """Whether ``pid`` or one of its descendants holds a listening TCP socket on ``port``.

    A health check answered on the port proves nothing by itself: another
    lab's server may have taken the port between ``up`` choosing it and this
    one binding it, and then answers every check in its place.
    """
    process = _process(pid)
    if process is None:
        return False
    try:
        family = [process, *process.children(recursive=True)]
    except psutil.Error:
        return False
    for member in family:
        try:
            sockets = member.net_connections(kind="tcp")
        except psutil.Error:
            continue
        if any(s.status == psutil.CONN_LISTEN and s.laddr.port == port for s in sockets):
            return True
    return False


def group_members(pgid: int) -> list[int]:
    """The live processes of process group ``pgid``."""
    found = []
    # psutil knows no process groups: the group of each pid comes from getpgid.
    for pid in psutil.pids():
        try:
            in_group = os.getpgid(pid) == pgid
        except OSError:  # gone since the listing
            continue
        if in_group and is_alive(pid):
            found.append(pid)
    return found


def signal_group(pgid: int, signum: int) -> None:
    """Send ``signum`` to every process of group ``pgid``; a group already gone is fine."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signum)


def signal_name(signum: int) -> str:
    """``SIGKILL`` for 9: how an exit by signal is written in ``state.json``."""
    return signal.Signals(signum).name


def reload_and_wait(pid: int, timeout: float) -> bool:
    """SIGHUP nginx's master ``pid``; True once every worker is a new one.

    A reloaded nginx keeps its old workers until their requests are done:
    those requests were routed by the old configuration (a drained instance
    among its upstreams), so a drain is complete only when they have gone.
    """
    old = set(children_of(pid))
    os.kill(pid, signal.SIGHUP)

    def replaced() -> bool:
        workers = set(children_of(pid))
        return bool(workers - old) and not workers & old

    return wait_until(replaced, timeout)
