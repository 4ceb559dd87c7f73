"""The one detached process that owns every server of a run.

It starts them (stores, app instances, then nginx once the database is ready),
records how each one ends in ``state.json``, carries out the requests the CLI
sends over a unix socket (kill, start, restart, drain, down) and restarts
nothing on its own: a fault the lab injects must stay visible until someone
starts the process again.

``Supervisor`` puts together what its parts do (``lifecycle``, ``bringup``,
``faults``, ``control_server``) and adds the run's beginning and end. The
dashboard is handed in (``sessions_lab.supervise`` does it), so the cluster
package never depends on the page that shows it.
"""

from __future__ import annotations

import contextlib
import signal
import subprocess
import threading
import traceback
from collections.abc import Callable
from typing import Any, Protocol

from sessions_lab.cluster import replication
from sessions_lab.cluster.bringup import BringUp
from sessions_lab.cluster.child import StartFailure
from sessions_lab.cluster.config import LabConfig, RunFolder
from sessions_lab.cluster.control import listen, tail
from sessions_lab.cluster.control_server import ControlServer
from sessions_lab.cluster.processes import group_members, is_alive, signal_group
from sessions_lab.cluster.state import Failure, LabState, Phase

CRASH_WAIT = 2.0  # after a crash, how long each child gets to be reaped after SIGKILL


class LiveView(Protocol):
    """What the supervisor needs of its dashboard: to start it, stop it, and say where."""

    def start(self, port: int) -> int: ...

    def stop(self) -> None: ...

    @property
    def url(self) -> str: ...


# How a dashboard is made: run, config, the state in memory, the supervisor's
# request handling (a click is a CLI request without the socket), its log.
DashboardFactory = Callable[
    [
        RunFolder,
        LabConfig,
        Callable[[], LabState],
        Callable[[dict[str, Any]], dict[str, Any]],
        Callable[[str], None],
    ],
    LiveView,
]


class Supervisor(BringUp, ControlServer):
    """Owns the processes of one run folder until ``down``."""

    def __init__(self, run: RunFolder, dashboard: DashboardFactory | None = None) -> None:
        super().__init__(run)
        self.make_dashboard = dashboard
        self.dashboard: LiveView | None = None
        if self.config.db == "postgres":
            self._add("postgres", "postgres", self.config.postgres_port)
        if self.mode.uses_redis:
            self._add("redis", "redis", self.config.redis_port)
        for name, port in zip(
            self.config.memcached_names, self.config.memcached_ports, strict=True
        ):
            self._add(name, "memcached", port)
        if self.config.primary_port is not None:
            self._add(replication.PRIMARY, "primary", self.config.primary_port)
        for name, port in zip(self.config.replica_names, self.config.replica_ports, strict=True):
            self._add(name, "replica", port)
        for name, port in zip(self.config.sentinel_names, self.config.sentinel_ports, strict=True):
            self._add(name, "sentinel", port)
        for name, port in zip(self.config.app_names, self.config.app_ports, strict=True):
            self._add(name, "app", port)
        self._add("nginx", "nginx", self.config.port)

    def supervise(self) -> int:
        """Serve until ``down``; whatever happens, no child outlives the supervisor."""
        try:
            return self.serve()
        except BaseException:
            self.log(traceback.format_exc())
            with self.lock:
                self.phase = Phase.FAILED
                self.failure = self.failure or {
                    "process": "supervisor",
                    "reason": "the supervisor crashed",
                    "log": str(self.run.log("supervisor")),
                    "log_tail": tail(self.run.log("supervisor")),
                }
            return 1
        finally:
            self.kill_everything()
            with contextlib.suppress(Exception):
                self.write_state()
            leftovers = [
                pid for child in self.children.values() if child.pid
                for pid in group_members(child.pid)
            ]  # fmt: skip
            if leftovers:
                self.log(f"left behind after SIGKILL: {leftovers}")

    def serve(self) -> int:
        listener = listen(self.run)
        self.start_dashboard()
        self.write_state()
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)
        threading.Thread(target=self.watch, name="watch", daemon=True).start()
        threading.Thread(target=self._bring_up, name="bring-up", daemon=True).start()
        self.serve_requests(listener)
        self.done.set()
        if self.dashboard is not None:
            self.dashboard.stop()
        return 1 if self.phase == Phase.FAILED else 0

    def start_dashboard(self) -> None:
        """Serve the live dashboard from a thread of this process, before any app starts
        (each is given its URL). Its buttons call ``reply_to`` in-process: a click is a
        CLI request without the socket. A lab without it still teaches, so a failure
        to listen is a note, not a failed ``up``."""
        if self.config.dashboard_port is None or self.make_dashboard is None:
            return
        dashboard = self.make_dashboard(
            self.run, self.config, self.snapshot, self.reply_to, self.log
        )
        try:
            port = dashboard.start(self.config.dashboard_port)
        except OSError as error:
            self.notes.append(f"the dashboard could not listen: {error}")
            self.config.dashboard_port = None
            return
        if port != self.config.dashboard_port:
            self.log(f"dashboard port {self.config.dashboard_port} was taken; using {port}")
            self.config.dashboard_port = port
        self.dashboard = dashboard
        self.log(f"dashboard at {dashboard.url}")

    def _bring_up(self) -> None:
        with self.actions:
            try:
                self.bring_up()
            except StartFailure as failure:
                self.fail(failure.name, failure.reason)
                return
            except Exception as error:
                self.log(traceback.format_exc())
                self.fail("supervisor", f"{type(error).__name__}: {error}")
                return
            with self.lock:
                self.phase = Phase.READY
                self.write_state()
            self.log(f"ready at {self.config.url}")

    def fail(self, name: str, reason: str) -> None:
        self.log(f"up failed: {reason}")
        spec = self.children[name].spec if name in self.children else None
        log = spec.log if spec is not None else self.run.log(name)
        # The log's tail as it was when the process failed, before `stop` adds to it.
        failure: Failure = {
            "process": name,
            "reason": reason,
            "log": str(log),
            "log_tail": tail(log),
        }
        self.stop(list(self.children.values()), "stopped after a failed up", quick=True)
        with self.lock:
            self.failure = failure
            self.phase = Phase.FAILED
            self.write_state()
        if not self.aborting.is_set():  # else `down` is under way and will end the run
            self.done.set()

    def _on_signal(self, signum: int, _frame: object) -> None:
        self.stop_requested = True

    def kill_everything(self) -> None:
        """Last resort on a supervisor crash: no child may outlive it."""
        for child in self.children.values():
            if child.pid is not None and is_alive(child.pid, child.start_time):
                signal_group(child.pid, signal.SIGKILL)
                signal_group(child.pid, signal.SIGCONT)
        for child in self.children.values():
            if child.popen is not None and child.popen.poll() is None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    child.popen.wait(CRASH_WAIT)
