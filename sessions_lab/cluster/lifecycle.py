"""The children of one run, from spawn to reaped, and the ``state.json`` that tells of them.

This is what every other part of the supervisor builds on: bring-up starts
children in order, the fault operations break and restart them, the control
server reports on them. One lock guards the children and ``state.json``
together, so the file never shows half a change. Nothing here restarts a
child on its own: a fault the lab injects must stay visible.
"""

from __future__ import annotations

import os
import pwd
import signal
import subprocess
import threading
import time
from dataclasses import asdict
from typing import Any

from sessions_lab.cluster import apps, memcached, nginx, postgres, redis, replication
from sessions_lab.cluster.binaries import Binary
from sessions_lab.cluster.child import Child, StartFailure, now_iso, probe
from sessions_lab.cluster.config import RunFolder, write_json_atomically
from sessions_lab.cluster.control import STOP_TIMEOUT
from sessions_lab.cluster.processes import (
    ProcessSpec,
    group_members,
    is_paused,
    listens_on,
    proc_start_time,
    signal_group,
)
from sessions_lab.cluster.state import (
    STATE_SCHEMA_VERSION,
    Failure,
    LabState,
    Phase,
    ProcessStatus,
)
from sessions_lab.modes import get_mode
from sessions_lab.waiting import POLL, wait_until

HEALTH_EVERY = 1.0  # seconds between two health checks of a running child
START_TIMEOUT = 60.0
GROUP_SETTLE = 5.0  # how long `stop` waits for the workers a leader leaves behind


class ChildLifecycle:
    """The children of one run folder: start, watch, stop; and ``state.json``."""

    def __init__(self, run: RunFolder) -> None:
        self.run = run
        self.config = run.read_config()
        self.mode = get_mode(self.config.mode)
        self.lock = threading.RLock()  # guards the children and state.json
        self.actions = threading.Lock()  # one request at a time
        self.phase = Phase.STARTING
        self.failure: Failure | None = None
        self.notes: list[str] = []
        self.aborting = threading.Event()  # `down` came during bring-up
        self.done = threading.Event()  # the supervisor is to exit
        self.binaries: dict[str, Binary] = {}
        self.children: dict[str, Child] = {}

    def _add(self, name: str, role: str, port: int | None) -> None:
        assert port is not None
        self.children[name] = Child(name=name, role=role, port=port)

    def in_rotation(self) -> list[str]:
        """The app instances nginx sends requests to: all but the drained ones."""
        return [c.name for c in self.children.values() if c.role == "app" and not c.drained]

    # ------------------------------------------------------------------ state

    def write_state(self) -> None:
        with self.lock:
            write_json_atomically(self.run.state, self.snapshot())

    def snapshot(self) -> LabState:
        """What ``state.json`` holds, read in memory (the dashboard polls it every second)."""
        with self.lock:
            return {
                "schema_version": STATE_SCHEMA_VERSION,
                "updated": now_iso(),
                "phase": self.phase,
                "failure": self.failure,
                "supervisor": {"pid": os.getpid(), "start_time": proc_start_time(os.getpid())},
                "url": self.config.url,
                "mode": self.config.mode,
                "instances": self.config.instances,
                "affinity": self.config.affinity,
                "db": self.config.db,
                "redis_persistence": self.config.redis_persistence,
                "shop": asdict(self.config.shop),
                "port": self.config.port,
                "notes": self.notes,
                "versions": {role: b.version_text for role, b in self.binaries.items()},
                "processes": [child.to_dict() for child in self.children.values()],
                "dashboard_url": self.config.dashboard_url,
            }

    def log(self, message: str) -> None:
        print(f"{now_iso()} {message}", flush=True)

    # ------------------------------------------------------------------ one child

    def spec_for(self, child: Child) -> ProcessSpec:
        config, run = self.config, self.run
        if child.role == "app":
            return apps.gunicorn_spec(config, run, child.name, child.port)
        if child.role == "nginx":
            return nginx.nginx_spec(config, run, self.binaries["nginx"], self.in_rotation())
        if child.role == "redis":
            return redis.redis_spec(config, run, self.binaries["redis"])
        if child.role == "memcached":
            return memcached.memcached_spec(config, run, self.binaries["memcached"], child.name)
        if child.role in ("primary", "replica"):
            return replication.server_spec(config, run, self.binaries["redis"], child.name)
        if child.role == "sentinel":
            return replication.sentinel_spec(config, run, self.binaries["redis"], child.name)
        return postgres.postgres_spec(config, run, self.binaries["postgres"])

    def spawn(self, child: Child) -> None:
        spec = self.spec_for(child)
        ids: dict[str, Any] = {}
        if spec.user is not None:
            entry = pwd.getpwnam(spec.user)
            ids = {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}
        spec.log.parent.mkdir(parents=True, exist_ok=True)
        with spec.log.open("ab") as out:
            out.write(f"--- {now_iso()} started by sessions-lab: {spec.name}\n".encode())
            out.flush()
            popen = subprocess.Popen(  # noqa: S603 - argv built by the lab
                spec.argv,
                cwd=spec.cwd,
                env=spec.env or None,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                # A group of its own: one signal reaches master and workers,
                # and nothing the lab sends the supervisor reaches them.
                start_new_session=True,
                close_fds=True,
                **ids,
            )
        with self.lock:
            child.started(spec, popen)
            self.write_state()
        self.log(f"started {child.name} pid {popen.pid} port {child.port}")

    def wait_healthy(self, child: Child, timeout: float = START_TIMEOUT) -> None:
        """Wait for ``child``'s health check to pass; ``StartFailure`` if it ends first,
        ``down`` comes, or ``timeout`` passes."""
        spec = child.spec
        assert spec is not None

        def healthy() -> bool:
            # Raised from here, so a child that ends or a `down` is noticed within one poll.
            if self.aborting.is_set():
                raise StartFailure(child.name, "start aborted by `down`")
            if child.exited.is_set() or not child.running:
                cause = child.exit["cause"] if child.exit else "exited"
                raise StartFailure(child.name, f"{child.name} ended while starting ({cause})")
            # Answered by this child, not by another lab's server on the same port.
            return probe(spec) and child.pid is not None and listens_on(child.pid, spec.port)

        if not wait_until(healthy, timeout):
            raise StartFailure(child.name, f"{child.name} was not healthy after {timeout:.0f} s")
        with self.lock:
            if child.running:
                child.status = ProcessStatus.RUNNING
                child.healthy = True
            self.write_state()

    def record_exit(self, child: Child, returncode: int) -> None:
        with self.lock:
            ended = child.ended(returncode)
            # What is left of a group without its leader (gunicorn workers
            # keep serving for a while) is nothing the lab could account for.
            if child.pid is not None:
                signal_group(child.pid, signal.SIGKILL)
            child.exited.set()
            self.write_state()
        self.log(f"{child.name} ended: {ended['cause']}")

    # ------------------------------------------------------------------ all of them

    def watch(self) -> None:
        """Reap children as they end, notice pauses, refresh health: until the end."""
        next_health = time.monotonic()
        while not self.done.is_set():
            for child in list(self.children.values()):
                if child.popen is None or not child.running:
                    continue
                returncode = child.popen.poll()
                if returncode is not None:
                    self.record_exit(child, returncode)
                    continue
                paused = is_paused(child.popen.pid)
                was_paused = child.status == ProcessStatus.PAUSED
                if paused != was_paused and child.status != ProcessStatus.STARTING:
                    with self.lock:
                        child.status = ProcessStatus.PAUSED if paused else ProcessStatus.RUNNING
                        child.healthy = child.healthy and not paused
                        self.write_state()
            if time.monotonic() >= next_health:
                self.refresh_health()
                next_health = time.monotonic() + HEALTH_EVERY
            time.sleep(POLL)

    def refresh_health(self) -> None:
        checked = {
            child.name: probe(child.spec)
            for child in list(self.children.values())
            if child.status == ProcessStatus.RUNNING and child.spec is not None
        }
        with self.lock:
            changed = False
            for name, healthy in checked.items():
                child = self.children[name]
                if child.status == ProcessStatus.RUNNING and child.healthy != healthy:
                    child.healthy = healthy
                    changed = True
            if changed:
                self.write_state()

    def stop(
        self,
        children: list[Child],
        cause: str,
        timeout: float = STOP_TIMEOUT,
        quick: bool = False,
    ) -> None:
        """Stop ``children`` all at once (gracefully unless ``quick``); SIGKILL what is
        left after ``timeout``."""
        running = [child for child in children if child.running and child.pid is not None]
        for child in running:
            assert child.spec is not None and child.pid is not None
            with self.lock:
                child.pending_cause = cause
            signal_group(
                child.pid, child.spec.quick_stop_signal if quick else child.spec.stop_signal
            )
            # A paused process acts on nothing until it runs again.
            signal_group(child.pid, signal.SIGCONT)
        deadline = time.monotonic() + timeout
        for child in running:
            child.exited.wait(max(0.0, deadline - time.monotonic()))
        for child in running:
            if not child.exited.is_set() and child.pid is not None:
                with self.lock:
                    child.pending_cause = f"{cause} (SIGKILL after {timeout:.0f} s)"
                signal_group(child.pid, signal.SIGKILL)
        for child in running:
            if not child.exited.wait(5.0) and child.popen is not None:
                self.record_exit(child, child.popen.wait())
        # The leader's exit is not the group's: wait (bounded) for its
        # workers too, so a caller of `down` finds no process left.
        wait_until(
            lambda: not any(c.pid is not None and group_members(c.pid) for c in running),
            GROUP_SETTLE,
            interval=0.02,
        )

    def down(self) -> str:
        """Stop every child, quickly: nothing in flight matters any more."""
        self.aborting.set()
        with self.actions:
            with self.lock:
                self.phase = Phase.STOPPING
                self.write_state()
            started = time.monotonic()
            self.stop(list(self.children.values()), "stopped by down", quick=True)
            with self.lock:
                self.phase = Phase.DOWN
                self.write_state()
        return f"all processes stopped in {time.monotonic() - started:.1f} s"
