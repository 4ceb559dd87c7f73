"""``state.json``: what the supervisor says about its run, field by field.

The supervisor writes it on every change; ``status``, the dashboard, the
experiment runner and ``down`` (after a supervisor crash) read it. The compose
driver builds the same shape from ``docker compose ps``. Its fields are
declared here once; ``docs/architecture.md`` describes them for readers.
"""

from __future__ import annotations

import json
from enum import StrEnum
from typing import Any, NotRequired, TypedDict

from sessions_lab.cluster.config import RunFolder

STATE_SCHEMA_VERSION = 1


class ProcessStatus(StrEnum):
    """Where a supervised process is in its life (``processes[].status``)."""

    NOT_STARTED = "not started"
    STARTING = "starting"
    RUNNING = "running"
    PAUSED = "paused"  # SIGSTOP: alive, holding every request sent to it
    EXITED = "exited"

    @property
    def alive(self) -> bool:
        return self in (ProcessStatus.STARTING, ProcessStatus.RUNNING, ProcessStatus.PAUSED)


class Phase(StrEnum):
    """Where the whole run is (``phase``)."""

    STARTING = "starting"
    READY = "ready"
    STOPPING = "stopping"
    DOWN = "down"
    FAILED = "failed"


class ProcessExit(TypedDict):
    code: int | None
    signal: str | None  # "SIGKILL", … when a signal ended it
    cause: str  # in words: "killed by lab: SIGKILL", "stopped by down", …
    at: NotRequired[str]


class ProcessState(TypedDict):
    name: str  # app1, nginx, redis, postgres
    role: str  # app, nginx, redis, postgres
    pid: int | None
    pgid: int | None
    start_time: float | int | None  # tells a reused pid from ours
    port: int
    status: str  # a ProcessStatus value
    alive: bool
    healthy: bool
    drained: bool  # out of nginx's rotation (``drain``)
    started_at: str | None
    exit: ProcessExit | None  # the last exit
    exits: list[ProcessExit]  # every exit, oldest first (the last 20)
    log: str | None


class Failure(TypedDict):
    process: str
    reason: str
    log: str
    log_tail: str


class LabState(TypedDict):
    schema_version: int
    updated: str
    phase: str  # a Phase value
    failure: Failure | None  # why ``up`` failed
    supervisor: dict[str, Any]  # pid, start_time; ``status`` adds running
    url: str
    mode: str
    instances: int
    affinity: str
    db: str
    redis_persistence: str
    port: int
    notes: list[str]
    versions: dict[str, str]
    processes: list[ProcessState]
    dashboard_url: str | None


def read_state(run: RunFolder) -> LabState | None:
    """The run's ``state.json``, or None when there is none (or it is being replaced)."""
    try:
        return json.loads(run.state.read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError):
        return None
