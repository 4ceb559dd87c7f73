"""The lab's cluster as the CLI (and later the experiment runner) sees it.

``Cluster`` is the client side of the supervisor: ``up`` checks what would
make a start fail obscurely (a second lab, a port in use, a missing binary),
launches the supervisor and waits until it reports every process healthy;
``kill``/``start``/``restart``/``drain``/``down`` are requests to it over its
socket; ``status`` reads ``state.json``. When the supervisor is gone (it
crashed, or was killed), ``down`` still finds every process it left from the
pids and start times in ``state.json``.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from sessions_lab.cluster import network
from sessions_lab.cluster.apps import PROJECT_ROOT
from sessions_lab.cluster.binaries import BinaryNotFoundError, find_binary
from sessions_lab.cluster.config import (
    AFFINITIES,
    APP_PORT_BASE,
    DASHBOARD_PORT_OFFSET,
    DATABASES,
    POSTGRES_PORT,
    REDIS_PERSISTENCE,
    REDIS_PORT,
    LabConfig,
    RunFolder,
    write_json_atomically,
)
from sessions_lab.cluster.processes import group_members, is_alive, signal_group
from sessions_lab.cluster.supervisor import socket_address, tail
from sessions_lab.modes import MODE_NAMES, LoadBalancing, get_mode

SIGNALS = ("KILL", "TERM", "STOP")
UP_TIMEOUT = 90.0
REQUEST_TIMEOUT = 60.0


class LabError(Exception):
    """A request that cannot be carried out as asked; the message says what to do."""


class LabFailure(Exception):
    """The lab tried and something failed (a process did not come up)."""


class Cluster:
    """One run folder's cluster: start it, break it, stop it."""

    def __init__(self, run_dir: Path | str = ".lab") -> None:
        self.run = RunFolder(Path(run_dir))

    # ------------------------------------------------------------------ talking to the supervisor

    def _connect(self, timeout: float) -> socket.socket | None:
        connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        connection.settimeout(timeout)
        try:
            connection.connect(socket_address(self.run))
        except OSError:
            connection.close()
            return None
        return connection

    def is_running(self) -> bool:
        """Whether a supervisor serves this run folder."""
        connection = self._connect(2.0)
        if connection is None:
            return False
        connection.close()
        return True

    def request(self, action: str, **fields: str) -> str:
        connection = self._connect(REQUEST_TIMEOUT)
        if connection is None:
            raise LabError(f"no lab is running in {self.run.root}: `sessions-lab up` first")
        with connection:
            connection.sendall(json.dumps({"action": action, **fields}).encode() + b"\n")
            line = connection.makefile("rb").readline()
        if not line:
            raise LabFailure(
                f"the supervisor ended without answering; see {self.run.log('supervisor')}"
            )
        reply = json.loads(line)
        if not reply["ok"]:
            raise LabError(reply["error"])
        return str(reply["message"])

    # ------------------------------------------------------------------ commands

    def up(
        self,
        mode: str,
        instances: int = 3,
        affinity: str | None = None,
        db: str = "sqlite",
        port: int = 8080,
        redis_persistence: str = "none",
        demo_users: int = 10,
    ) -> dict[str, Any]:
        """Start the cluster and return its state once every process is healthy."""
        config = self._checked_config(mode, instances, affinity, db, port, redis_persistence)
        config.demo_users = demo_users
        if self.is_running():
            raise LabError(
                f"a lab is already running in {self.run.root}: `sessions-lab down` first"
            )
        self.clean_leftovers()
        self._check_binaries(config)
        if not network.port_is_free(port):
            raise LabError(
                f"port {port} is in use: pass --port with a free one, or stop what uses it"
            )
        taken = {port}
        config.app_ports = network.choose_ports(
            [APP_PORT_BASE + i for i in range(instances)], taken
        )
        taken.update(config.app_ports)
        if get_mode(mode).uses_redis:
            config.redis_port = network.choose_ports([REDIS_PORT], taken)[0]
            taken.add(config.redis_port)
        if db == "postgres":
            config.postgres_port = network.choose_ports([POSTGRES_PORT], taken)[0]
            taken.add(config.postgres_port)
        dashboard = port + DASHBOARD_PORT_OFFSET
        config.dashboard_port = network.choose_ports(
            [dashboard if dashboard <= 65535 else network.free_port()], taken
        )[0]
        self.run.create()
        self.run.state.unlink(missing_ok=True)
        self.run.write_config(config)
        self.run.keys()
        try:
            return self._launch_and_wait()
        except KeyboardInterrupt:
            self.down()
            raise LabError("interrupted: the lab was torn down") from None

    def _checked_config(
        self,
        mode: str,
        instances: int,
        affinity: str | None,
        db: str,
        port: int,
        redis_persistence: str,
    ) -> LabConfig:
        if mode not in MODE_NAMES:
            raise LabError(f"unknown mode {mode!r}: choose one of {', '.join(MODE_NAMES)}")
        sticky = get_mode(mode).load_balancing is LoadBalancing.AFFINITY
        if affinity is not None and not sticky:
            raise LabError(
                f"--affinity applies to --mode sticky only; {mode} is balanced round robin"
            )
        affinity = (affinity or "cookie") if sticky else "none"
        if affinity not in AFFINITIES:
            raise LabError(f"unknown affinity {affinity!r}: choose one of {', '.join(AFFINITIES)}")
        if db not in DATABASES:
            raise LabError(f"unknown database {db!r}: choose one of {', '.join(DATABASES)}")
        if redis_persistence not in REDIS_PERSISTENCE:
            raise LabError(f"--redis-persistence is one of {', '.join(REDIS_PERSISTENCE)}")
        if not 1 <= instances <= 20:
            raise LabError("--instances must be between 1 and 20")
        if not 1 <= port <= 65535:
            raise LabError("--port must be between 1 and 65535")
        return LabConfig(
            mode=mode,
            instances=instances,
            affinity=affinity,
            db=db,
            port=port,
            redis_persistence=redis_persistence,
        )

    def _check_binaries(self, config: LabConfig) -> None:
        roles = ["nginx"]
        if get_mode(config.mode).uses_redis:
            roles.append("redis")
        if config.db == "postgres":
            roles.append("postgres")
        for role in roles:
            try:
                find_binary(role)
            except BinaryNotFoundError as error:
                raise LabError(str(error)) from None

    def _launch_and_wait(self) -> dict[str, Any]:
        supervisor_log = self.run.log("supervisor")
        with supervisor_log.open("ab") as out:
            launcher = subprocess.Popen(  # noqa: S603 - our own module
                [sys.executable, "-m", "sessions_lab.cluster.supervisor", str(self.run.root)],
                cwd=PROJECT_ROOT,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                # Detached: no terminal signal (Ctrl-C) reaches it, and it
                # keeps nothing of the caller's stdout, which a caller
                # capturing `up`'s output would otherwise wait on forever.
                start_new_session=True,
                close_fds=True,
            )
        launcher.wait()
        deadline = time.monotonic() + UP_TIMEOUT
        while time.monotonic() < deadline:
            state = self.read_state()
            if state is not None:
                if state["phase"] == "ready":
                    return state
                if state["phase"] in ("failed", "down") or not self._supervisor_alive(state):
                    self._wait_supervisor_gone(state)
                    self.clean_leftovers()
                    raise LabFailure(self._failure_text(state))
            time.sleep(0.05)
        self.down()
        raise LabFailure(f"the lab was not ready after {UP_TIMEOUT:.0f} s and was torn down")

    def _failure_text(self, state: dict[str, Any]) -> str:
        failure = state.get("failure") or {
            "process": "supervisor",
            "reason": "the supervisor ended unexpectedly",
            "log": str(self.run.log("supervisor")),
            "log_tail": tail(self.run.log("supervisor")),
        }
        lines = [f"up failed: {failure['reason']}. Nothing was left running."]
        if failure.get("log_tail"):
            lines.append(f"--- last lines of {failure['log']}:")
            lines.append(failure["log_tail"])
        return "\n".join(lines)

    def down(self) -> str:
        """Stop every process of the run; also those a crashed supervisor left behind."""
        if self.is_running():
            state = self.read_state()
            message = self.request("down")
            if state is not None:
                self._wait_supervisor_gone(state)
            self.clean_leftovers()
            return message
        cleaned = self.clean_leftovers()
        if cleaned:
            return f"the supervisor was gone; stopped what it left: {', '.join(cleaned)}"
        return f"no lab was running in {self.run.root}"

    def kill(self, target: str, signal_name: str = "KILL") -> str:
        signal_name = signal_name.upper().removeprefix("SIG")
        if signal_name not in SIGNALS:
            raise LabError(f"--signal is one of {', '.join(SIGNALS)}")
        return self.request("kill", target=target, signal=signal_name)

    def start(self, target: str) -> str:
        return self.request("start", target=target)

    def restart(self, target: str) -> str:
        return self.request("restart", target=target)

    def drain(self, target: str) -> str:
        return self.request("drain", target=target)

    def add(self, target: str) -> str:
        """Scale out by one app instance (``target`` names it: app4 after app1..app3)."""
        return self.request("add", target=target)

    def status(self) -> dict[str, Any]:
        """``state.json`` plus whether its supervisor still runs."""
        state = self.read_state()
        if state is None:
            raise LabError(f"no lab has run in {self.run.root}: `sessions-lab up` first")
        state["supervisor"]["running"] = self.is_running()
        return state

    def log_path(self, target: str) -> Path:
        path = self.run.access_log if target == "access" else self.run.log(target)
        if not path.exists():
            known = [*sorted(p.stem for p in self.run.logs.glob("*.log")), "access"]
            raise LabError(f"no log for {target!r}; there are: {', '.join(known)}")
        return path

    # ------------------------------------------------------------------ state and leftovers

    def read_state(self) -> dict[str, Any] | None:
        try:
            return json.loads(self.run.state.read_text(encoding="utf-8"))
        except (FileNotFoundError, json.JSONDecodeError):
            return None

    @staticmethod
    def _supervisor_alive(state: dict[str, Any]) -> bool:
        supervisor = state["supervisor"]
        return is_alive(supervisor["pid"], supervisor.get("start_time"))

    def _wait_supervisor_gone(self, state: dict[str, Any], timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while self._supervisor_alive(state) and time.monotonic() < deadline:
            time.sleep(0.02)

    def clean_leftovers(self) -> list[str]:
        """Kill what a dead supervisor left running (checked by pid and start time)."""
        state = self.read_state()
        if state is None or self.is_running():
            return []
        supervisor = state["supervisor"]
        if is_alive(supervisor["pid"], supervisor.get("start_time")):
            # Alive but not answering on its socket: hung, so nothing to ask.
            with contextlib.suppress(ProcessLookupError):
                os.kill(supervisor["pid"], signal.SIGKILL)
        cleaned = []
        for process in state["processes"]:
            pid = process.get("pid")
            if pid and is_alive(pid, process.get("start_time")):
                signal_group(pid, signal.SIGKILL)
                signal_group(pid, signal.SIGCONT)
                cleaned.append(process["name"])
        deadline = time.monotonic() + 5.0
        for process in state["processes"]:
            pid = process.get("pid")
            # The whole group, not only its leader: a gunicorn worker can
            # outlive its master by a few milliseconds after SIGKILL.
            while pid and process["name"] in cleaned and group_members(pid):
                if time.monotonic() > deadline:
                    break
                time.sleep(0.02)
            if process["name"] in cleaned:
                process.update(status="exited", alive=False, healthy=False)
                process["exit"] = {
                    "code": None,
                    "signal": "SIGKILL",
                    "cause": "stopped by down (its supervisor was gone)",
                }
        if state["phase"] not in ("down", "failed") or cleaned:
            state["phase"] = "down"
            write_json_atomically(self.run.state, state)
        return cleaned
