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
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

from sessions_lab.cluster import network
from sessions_lab.cluster.apps import app_env
from sessions_lab.cluster.binaries import BinaryNotFoundError, find_binary
from sessions_lab.cluster.config import (
    APP_PORT_BASE,
    DASHBOARD_PORT_OFFSET,
    MEMCACHED_PORT_BASE,
    POSTGRES_PORT,
    REDIS_PORT,
    REPLICA_PORT_BASE,
    SENTINEL_PORT_BASE,
    SENTINELS,
    LabConfig,
    RunFolder,
    ShopOptions,
    checked_config,
    write_json_atomically,
)
from sessions_lab.cluster.control import SIGNALS, Action, connect, encode, read_message, tail
from sessions_lab.cluster.errors import LabError, LabFailure
from sessions_lab.cluster.processes import group_members, is_alive, signal_group
from sessions_lab.cluster.state import LabState, Phase, ProcessStatus, read_state
from sessions_lab.modes import get_mode
from sessions_lab.paths import PROJECT_ROOT
from sessions_lab.waiting import wait_until

UP_TIMEOUT = 90.0
REQUEST_TIMEOUT = 60.0


MANAGE_TIMEOUT = 120  # seconds


class Cluster:
    """One run folder's cluster: start it, break it, stop it."""

    def __init__(self, run_dir: Path | str = ".lab") -> None:
        self.run = RunFolder(Path(run_dir))

    # ------------------------------------------------------------------ talking to the supervisor

    def _connect(self, timeout: float) -> socket.socket | None:
        return connect(self.run, timeout)

    def is_running(self) -> bool:
        """Whether a supervisor serves this run folder."""
        connection = self._connect(2.0)
        if connection is None:
            return False
        connection.close()
        return True

    def request(self, action: Action, **fields: str) -> str:
        connection = self._connect(REQUEST_TIMEOUT)
        if connection is None:
            raise LabError(f"no lab is running in {self.run.root}: `sessions-lab up` first")
        with connection:
            connection.sendall(encode({"action": action, **fields}))
            reply = read_message(connection)
        if reply is None:
            raise LabFailure(
                f"the supervisor ended without answering; see {self.run.log('supervisor')}"
            )
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
        replication: str = "async",
        shop: ShopOptions | None = None,
    ) -> dict[str, Any]:
        """Start the cluster and return its state once every process is healthy."""
        config = checked_config(
            mode, instances, affinity, db, port, redis_persistence, replication, shop
        )
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
        if get_mode(mode).uses_memcached:
            config.memcached_ports = network.choose_ports(
                [MEMCACHED_PORT_BASE + i for i in range(instances)], taken
            )
            taken.update(config.memcached_ports)
        if get_mode(mode).uses_replication:
            config.primary_port = network.choose_ports([REDIS_PORT], taken)[0]
            config.replica_ports = network.choose_ports(
                [REPLICA_PORT_BASE + i for i in range(instances)], taken | {config.primary_port}
            )
            taken.update([config.primary_port, *config.replica_ports])
            config.sentinel_ports = network.choose_ports(
                [SENTINEL_PORT_BASE + i for i in range(SENTINELS)], taken
            )
            taken.update(config.sentinel_ports)
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

    def _check_binaries(self, config: LabConfig) -> None:
        roles = ["nginx"]
        if get_mode(config.mode).uses_redis or get_mode(config.mode).uses_replication:
            roles.append("redis")
        if get_mode(config.mode).uses_memcached:
            roles.append("memcached")
        if config.db == "postgres":
            roles.append("postgres")
        for role in roles:
            try:
                find_binary(role)
            except BinaryNotFoundError as error:
                raise LabError(str(error)) from None

    def _launch_and_wait(self) -> LabState:
        supervisor_log = self.run.log("supervisor")
        with supervisor_log.open("ab") as out:
            launcher = subprocess.Popen(  # noqa: S603 - our own module
                [sys.executable, "-m", "sessions_lab.supervise", str(self.run.root)],
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

        def outcome() -> LabState | None:
            """The state once `up` has succeeded or failed; None while it is under way."""
            state = self.read_state()
            if state is None:
                return None
            if state["phase"] == Phase.READY:
                return state
            ended = state["phase"] in (Phase.FAILED, Phase.DOWN)
            return state if ended or not self._supervisor_alive(state) else None

        state = wait_until(outcome, UP_TIMEOUT)
        if state is None:
            self.down()
            raise LabFailure(f"the lab was not ready after {UP_TIMEOUT:.0f} s and was torn down")
        if state["phase"] == Phase.READY:
            return state
        self._wait_supervisor_gone(state)
        self.clean_leftovers()
        raise LabFailure(self._failure_text(state))

    def _failure_text(self, state: LabState) -> str:
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
            message = self.request(Action.DOWN)
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
        return self.request(Action.KILL, target=target, signal=signal_name)

    def start(self, target: str) -> str:
        return self.request(Action.START, target=target)

    def restart(self, target: str) -> str:
        return self.request(Action.RESTART, target=target)

    def drain(self, target: str) -> str:
        return self.request(Action.DRAIN, target=target)

    def add(self, target: str) -> str:
        """Scale out by one app instance (``target`` names it: app4 after app1..app3)."""
        return self.request(Action.ADD, target=target)

    def status(self) -> LabState:
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

    def collect_logs(self) -> Path:
        """The run's log folder: the supervisor already writes every log there."""
        return self.run.logs

    def manage(self, *arguments: str, capture: bool = True) -> str:
        """Run ``manage.py ARGUMENTS`` with the running lab's environment: its database, its
        keys, its mode; its standard output if captured (else it goes to the terminal)."""
        if not self.is_running():
            raise LabError("no lab is running: `sessions-lab up --mode M` first")
        try:
            completed = subprocess.run(  # noqa: S603 - our own manage.py, arguments as a list
                [sys.executable, str(PROJECT_ROOT / "manage.py"), *arguments],
                cwd=PROJECT_ROOT,
                env=app_env(self.run.read_config(), self.run, "manage"),
                capture_output=capture,
                text=True,
                check=False,
                # A captured command is the lab's own (an audit): bounded. One a
                # person typed (seed_catalog 100000) takes what it takes.
                timeout=MANAGE_TIMEOUT if capture else None,
            )
        except subprocess.TimeoutExpired:
            raise LabError(
                f"manage.py {' '.join(arguments)} took over {MANAGE_TIMEOUT} s"
            ) from None
        if completed.returncode != 0:
            detail = (completed.stderr or "").strip().splitlines()[-1:] if capture else []
            raise LabError(
                f"manage.py {' '.join(arguments)} failed (exit {completed.returncode})"
                + (f": {detail[0]}" if detail else "")
            )
        return completed.stdout or ""

    # ------------------------------------------------------------------ state and leftovers

    def read_state(self) -> LabState | None:
        return read_state(self.run)

    @staticmethod
    def _supervisor_alive(state: LabState) -> bool:
        supervisor = state["supervisor"]
        return is_alive(supervisor["pid"], supervisor.get("start_time"))

    def _wait_supervisor_gone(self, state: LabState, timeout: float = 10.0) -> None:
        wait_until(lambda: not self._supervisor_alive(state), timeout, interval=0.02)

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
        # The whole group, not only its leader: a gunicorn worker can
        # outlive its master by a few milliseconds after SIGKILL.
        killed = [p["pid"] for p in state["processes"] if p.get("pid") and p["name"] in cleaned]
        wait_until(lambda: not any(group_members(pid) for pid in killed), 5.0, interval=0.02)
        for process in state["processes"]:
            if process["name"] in cleaned:
                process.update(status=ProcessStatus.EXITED, alive=False, healthy=False)
                process["exit"] = {
                    "code": None,
                    "signal": "SIGKILL",
                    "cause": "stopped by down (its supervisor was gone)",
                }
        if state["phase"] not in (Phase.DOWN, Phase.FAILED) or cleaned:
            state["phase"] = Phase.DOWN
            write_json_atomically(self.run.state, state)
        return cleaned
