"""One supervised server, as the supervisor keeps track of it.

A ``Child`` outlives the processes it names: ``start app2`` after ``kill app2``
runs a new process for the same child, and the child remembers every exit, so
a restart never hides the fault before it. ``to_dict`` is its entry in
``state.json``.
"""

from __future__ import annotations

import subprocess
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sessions_lab.cluster import network
from sessions_lab.cluster.processes import ProcessSpec, proc_start_time, signal_name
from sessions_lab.cluster.state import ProcessExit, ProcessState, ProcessStatus

# state.json keeps the last exits only: a lab killed in a loop must not grow it forever.
EXITS_KEPT = 20


def now_iso() -> str:
    """Now, in UTC, as ``state.json`` and the supervisor's log write it."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class StartFailure(Exception):
    """A process did not come up; ``name`` is the one to blame."""

    def __init__(self, name: str, reason: str) -> None:
        super().__init__(reason)
        self.name = name
        self.reason = reason


def probe(spec: ProcessSpec) -> bool:
    """Whether the server of ``spec`` answers its health check now."""
    if spec.health.startswith("http:"):
        return network.http_ok(spec.port, spec.health.removeprefix("http:"))
    if spec.health == "redis":
        return network.redis_ok(spec.port)
    if spec.health == "replica":
        return network.replica_synced(spec.port)
    if spec.health == "memcached":
        return network.memcached_ok(spec.port)
    return network.tcp_open(spec.port)


@dataclass
class Child:
    """One supervised server: its spec and what became of it."""

    name: str
    role: str
    port: int
    spec: ProcessSpec | None = None
    popen: subprocess.Popen[bytes] | None = None
    start_time: float | None = None
    status: ProcessStatus = ProcessStatus.NOT_STARTED
    healthy: bool = False
    drained: bool = False
    started_at: str | None = None
    exit: ProcessExit | None = None
    pending_cause: str | None = None  # why the lab is about to end it
    exits: list[ProcessExit] = field(default_factory=list)  # every exit, oldest first
    exited: threading.Event = field(default_factory=threading.Event)

    @property
    def pid(self) -> int | None:
        return self.popen.pid if self.popen else None

    @property
    def running(self) -> bool:
        return self.status.alive

    def started(self, spec: ProcessSpec, popen: subprocess.Popen[bytes]) -> None:
        """A new process runs for this child; it is starting until its health check passes."""
        self.spec = spec
        self.popen = popen
        self.start_time = proc_start_time(popen.pid)
        self.status = ProcessStatus.STARTING
        self.healthy = False
        self.exit = None
        self.pending_cause = None
        self.started_at = now_iso()
        self.exited.clear()

    def ended(self, returncode: int) -> ProcessExit:
        """Record how its process ended (``Popen.returncode``) and why, if the lab did it."""
        if returncode < 0:
            how = signal_name(-returncode)
            default_cause = f"killed by {how} (not sent by the lab)"
            code, signame = None, how
        else:
            default_cause = f"exited {returncode}"
            code, signame = returncode, None
        self.exit = {
            "code": code,
            "signal": signame,
            "cause": self.pending_cause or default_cause,
            "at": now_iso(),
        }
        self.exits.append(self.exit)
        self.status = ProcessStatus.EXITED
        self.healthy = False
        self.pending_cause = None
        return self.exit

    def to_dict(self) -> ProcessState:
        return {
            "name": self.name,
            "role": self.role,
            "pid": self.pid,
            "pgid": self.pid,
            "start_time": self.start_time,
            "port": self.port,
            "status": self.status,
            "alive": self.running,
            "healthy": self.healthy,
            "drained": self.drained,
            "started_at": self.started_at,
            "exit": self.exit,
            # Earlier runs of this process too: a restart must not hide a fault.
            "exits": self.exits[-EXITS_KEPT:],
            "log": str(self.spec.log) if self.spec else None,
        }
