"""The one detached process that owns every server of a run.

It starts them (stores, app instances, then nginx once the database is ready),
records how each one ends in ``state.json``, carries out the requests the CLI
sends over a unix socket (kill, start, restart, drain, down) and restarts
nothing on its own: a fault the lab injects must stay visible until someone
starts the process again.

Run as ``python -m sessions_lab.cluster.supervisor RUN_DIR``; it forks once so
the caller (``up``) can wait for the launcher and never owns the supervisor.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sessions_lab.cluster import apps, network, nginx, postgres, redis
from sessions_lab.cluster.binaries import Binary, find_binary
from sessions_lab.cluster.config import APP_PORT_BASE, RunFolder, write_json_atomically
from sessions_lab.cluster.processes import (
    ProcessSpec,
    children_of,
    group_members,
    is_alive,
    proc_start_time,
    proc_state,
    signal_group,
    signal_name,
)
from sessions_lab.dashboard import Dashboard
from sessions_lab.modes import get_mode

STATE_SCHEMA_VERSION = 1
POLL = 0.05  # how often the supervisor looks at its children, in seconds
HEALTH_EVERY = 1.0
START_TIMEOUT = 60.0
STOP_TIMEOUT = 3.0  # graceful stop, then SIGKILL


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def socket_address(run: RunFolder) -> str:
    """The supervisor's socket, in the abstract namespace: it vanishes with the
    supervisor (no stale file to mistake for a running lab) and has no path-length
    limit, however deep the run folder is."""
    import hashlib

    digest = hashlib.sha1(str(run.root).encode()).hexdigest()[:20]  # noqa: S324 - a name
    return f"\0sessions-lab-{digest}"


class RequestError(Exception):
    """A request the supervisor refuses; the message tells the user what to do."""


class StartFailure(Exception):
    """A process did not come up; ``name`` is the one to blame."""

    def __init__(self, name: str, reason: str) -> None:
        super().__init__(reason)
        self.name = name
        self.reason = reason


def tail(path: Path, lines: int = 20) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def probe(spec: ProcessSpec) -> bool:
    if spec.health.startswith("http:"):
        return network.http_ok(spec.port, spec.health.removeprefix("http:"))
    if spec.health == "redis":
        return network.redis_ok(spec.port)
    return network.tcp_open(spec.port)


@dataclass
class Child:
    """One supervised server: its spec and what became of it."""

    name: str
    role: str
    port: int
    spec: ProcessSpec | None = None
    popen: subprocess.Popen[bytes] | None = None
    start_time: int | None = None
    status: str = "not started"  # starting, running, paused, exited
    healthy: bool = False
    drained: bool = False
    started_at: str | None = None
    exit: dict[str, Any] | None = None
    pending_cause: str | None = None  # why the lab is about to end it
    exits: list[dict[str, Any]] = field(default_factory=list)  # every exit, oldest first
    exited: threading.Event = field(default_factory=threading.Event)

    @property
    def pid(self) -> int | None:
        return self.popen.pid if self.popen else None

    @property
    def running(self) -> bool:
        return self.status in ("starting", "running", "paused")

    def to_dict(self) -> dict[str, Any]:
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
            "exits": self.exits[-20:],
            "log": str(self.spec.log) if self.spec else None,
        }


class Supervisor:
    """Owns the processes of one run folder until ``down``."""

    def __init__(self, run: RunFolder) -> None:
        self.run = run
        self.config = run.read_config()
        self.mode = get_mode(self.config.mode)
        self.lock = threading.RLock()  # guards the children and state.json
        self.actions = threading.Lock()  # one request at a time
        self.phase = "starting"
        self.failure: dict[str, Any] | None = None
        self.notes: list[str] = []
        self.aborting = threading.Event()
        self.done = threading.Event()
        self.stop_requested = False
        self.binaries: dict[str, Binary] = {}
        self.children: dict[str, Child] = {}
        self.dashboard: Dashboard | None = None
        if self.config.db == "postgres":
            self._add("postgres", "postgres", self.config.postgres_port)
        if self.mode.uses_redis:
            self._add("redis", "redis", self.config.redis_port)
        for name, port in zip(self.config.app_names, self.config.app_ports, strict=True):
            self._add(name, "app", port)
        self._add("nginx", "nginx", self.config.port)

    def _add(self, name: str, role: str, port: int | None) -> None:
        assert port is not None
        self.children[name] = Child(name=name, role=role, port=port)

    # ------------------------------------------------------------------ state

    def write_state(self) -> None:
        with self.lock:
            write_json_atomically(self.run.state, self.snapshot())

    def snapshot(self) -> dict[str, Any]:
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
                "port": self.config.port,
                "notes": self.notes,
                "versions": {role: b.version_text for role, b in self.binaries.items()},
                "processes": [child.to_dict() for child in self.children.values()],
                "dashboard_url": self.config.dashboard_url,
            }

    def log(self, message: str) -> None:
        print(f"{now_iso()} {message}", flush=True)

    # ------------------------------------------------------------------ processes

    def spec_for(self, child: Child) -> ProcessSpec:
        config, run = self.config, self.run
        if child.role == "app":
            return apps.gunicorn_spec(config, run, child.name, child.port)
        if child.role == "nginx":
            return nginx.nginx_spec(config, run, self.binaries["nginx"], self.in_rotation())
        if child.role == "redis":
            return redis.redis_spec(config, run, self.binaries["redis"])
        return postgres.postgres_spec(config, run, self.binaries["postgres"])

    def spawn(self, child: Child) -> None:
        spec = self.spec_for(child)
        ids: dict[str, Any] = {}
        if spec.user is not None:
            import pwd

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
            child.spec = spec
            child.popen = popen
            child.start_time = proc_start_time(popen.pid)
            child.status = "starting"
            child.healthy = False
            child.exit = None
            child.pending_cause = None
            child.started_at = now_iso()
            child.exited.clear()
            self.write_state()
        self.log(f"started {child.name} pid {popen.pid} port {child.port}")

    def wait_healthy(self, child: Child, timeout: float = START_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        assert child.spec is not None
        while time.monotonic() < deadline:
            if self.aborting.is_set():
                raise StartFailure(child.name, "start aborted by `down`")
            if child.exited.is_set() or not child.running:
                cause = child.exit["cause"] if child.exit else "exited"
                raise StartFailure(child.name, f"{child.name} ended while starting ({cause})")
            if probe(child.spec):
                with self.lock:
                    if child.running:
                        child.status = "running"
                        child.healthy = True
                    self.write_state()
                return
            time.sleep(POLL)
        raise StartFailure(child.name, f"{child.name} was not healthy after {timeout:.0f} s")

    def record_exit(self, child: Child, returncode: int) -> None:
        with self.lock:
            if returncode < 0:
                how = signal_name(-returncode)
                default_cause = f"killed by {how} (not sent by the lab)"
                child.exit = {"code": None, "signal": how}
            else:
                default_cause = f"exited {returncode}"
                child.exit = {"code": returncode, "signal": None}
            child.exit["cause"] = child.pending_cause or default_cause
            child.exit["at"] = now_iso()
            child.exits.append(child.exit)
            child.status = "exited"
            child.healthy = False
            child.pending_cause = None
            # What is left of a group without its leader (gunicorn workers
            # keep serving for a while) is nothing the lab could account for.
            if child.pid is not None:
                signal_group(child.pid, signal.SIGKILL)
            child.exited.set()
            self.write_state()
        self.log(f"{child.name} ended: {child.exit['cause']}")

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
                paused = proc_state(child.popen.pid) == "T"
                if paused != (child.status == "paused") and child.status != "starting":
                    with self.lock:
                        child.status = "paused" if paused else "running"
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
            if child.status == "running" and child.spec is not None
        }
        with self.lock:
            changed = False
            for name, healthy in checked.items():
                child = self.children[name]
                if child.status == "running" and child.healthy != healthy:
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
        settle = time.monotonic() + 5.0
        for child in running:
            while child.pid is not None and group_members(child.pid) and time.monotonic() < settle:
                time.sleep(0.02)

    # ------------------------------------------------------------------ bring-up

    def find_binaries(self) -> None:
        self.binaries["nginx"] = find_binary("nginx")
        if self.mode.uses_redis:
            self.binaries["redis"] = find_binary("redis")
        if self.config.db == "postgres":
            self.binaries["postgres"] = find_binary("postgres")
        balancing = nginx.balancing_for(self.config, self.binaries["nginx"].version)
        self.notes = list(balancing.notes)

    def bring_up(self) -> None:
        """Start everything in order; raise ``StartFailure`` naming what did not come up."""
        self.find_binaries()
        self.write_state()
        deadline = time.monotonic() + START_TIMEOUT
        if "postgres" in self.children:
            try:
                self.spawn(self.children["postgres"])
                postgres.create_database(self.config, deadline)
            except postgres.PostgresError as error:
                raise StartFailure("postgres", str(error)) from None
            self.wait_healthy(self.children["postgres"])
        if "redis" in self.children:
            self.spawn(self.children["redis"])
            self.wait_healthy(self.children["redis"])
        # Migrations and demo users run while the instances boot: no traffic
        # reaches an instance before nginx starts, and nginx starts after both.
        prepare_log = self.run.log("prepare-database")
        with prepare_log.open("ab") as out:
            preparing = subprocess.Popen(  # noqa: S603 - argv built by the lab
                apps.prepare_database_argv(self.config),
                cwd=apps.PROJECT_ROOT,
                env=apps.app_env(self.config, self.run, "app1"),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            app_children = [c for c in self.children.values() if c.role == "app"]
            for child in app_children:
                self.spawn(child)
            while preparing.poll() is None:
                if self.aborting.is_set() or time.monotonic() > deadline:
                    raise StartFailure("prepare-database", "migrations did not finish")
                time.sleep(POLL)
            if preparing.returncode != 0:
                raise StartFailure(
                    "prepare-database",
                    f"migrations or demo users failed (exit {preparing.returncode})",
                )
        finally:
            if preparing.poll() is None:
                signal_group(preparing.pid, signal.SIGKILL)
                preparing.wait()
        for child in app_children:
            self.wait_healthy(child, max(1.0, deadline - time.monotonic()))
        self.spawn(self.children["nginx"])
        self.wait_healthy(self.children["nginx"], 10.0)

    # ------------------------------------------------------------------ requests

    def child(self, target: str) -> Child:
        if target not in self.children:
            known = ", ".join(self.children)
            raise RequestError(f"unknown target {target!r}: this lab runs {known}")
        return self.children[target]

    def in_rotation(self) -> list[str]:
        return [c.name for c in self.children.values() if c.role == "app" and not c.drained]

    def kill(self, target: str, signame: str = "KILL") -> str:
        child = self.child(target)
        if not child.running or child.pid is None:
            raise RequestError(f"{target} is not running; `sessions-lab start {target}` starts it")
        signum = signal.Signals[f"SIG{signame}"]
        if signum == signal.SIGSTOP:
            signal_group(child.pid, signal.SIGSTOP)
            deadline = time.monotonic() + 2.0
            while proc_state(child.pid) != "T" and time.monotonic() < deadline:
                time.sleep(POLL / 5)
            with self.lock:
                child.status = "paused"
                child.healthy = False
                self.write_state()
            return (
                f"{target} paused (SIGSTOP): it holds the requests sent to it; "
                f"`sessions-lab start {target}` resumes it"
            )
        with self.lock:
            child.pending_cause = f"killed by lab: SIG{signame}"
        signal_group(child.pid, signum)
        signal_group(child.pid, signal.SIGCONT)
        wait = 2.0 if signum == signal.SIGKILL else apps.GRACEFUL_TIMEOUT + STOP_TIMEOUT
        if not child.exited.wait(wait):
            return f"sent SIG{signame} to {target}; it is still running"
        return f"{target} killed (SIG{signame})"

    def start(self, target: str) -> str:
        child = self.child(target)
        if child.status == "paused" and child.pid is not None:
            signal_group(child.pid, signal.SIGCONT)
            with self.lock:
                child.status = "running"
                self.write_state()
            return f"{target} resumed (SIGCONT)"
        if child.running:
            raise RequestError(f"{target} is already running")
        port = child.port
        if port and not network.port_is_free(port):
            # While it was down, another program took its port: the health
            # check would then pass against that program, not ours.
            raise RequestError(
                f"port {port} of {target} is taken by another program: stop it, or "
                "`sessions-lab down` and `up` again (ports are chosen afresh)"
            )
        self.spawn(child)
        try:
            self.wait_healthy(child, 30.0)
        except StartFailure as failure:
            assert child.spec is not None
            raise RequestError(
                f"{failure.reason}; last lines of {child.spec.log}:\n{tail(child.spec.log)}"
            ) from None
        if child.role == "app" and child.drained:
            with self.lock:
                child.drained = False
                self.write_state()
            self.reload_nginx()
            return f"{target} started and back in nginx"
        return f"{target} started"

    def restart(self, target: str) -> str:
        child = self.child(target)
        self.stop([child], "stopped by lab: restart")
        return self.start(target).replace("started", "restarted", 1)

    def drain(self, target: str) -> str:
        child = self.child(target)
        if child.role != "app":
            raise RequestError(f"only app instances can be drained, not {target}")
        if child.drained:
            return f"{target} is already drained"
        if self.in_rotation() == [target]:
            raise RequestError(f"{target} is the last instance in nginx; start another first")
        with self.lock:
            child.drained = True
            self.write_state()
        self.reload_nginx()
        return (
            f"{target} drained: nginx sends it nothing and its requests in flight are done; "
            f"`sessions-lab kill {target} --signal TERM` now loses nothing"
        )

    def add_instance(self, target: str) -> str:
        """Scale out: start one more app instance and put it in nginx (the scale-out scenario)."""
        following = f"app{self.config.instances + 1}"
        if target != following:
            raise RequestError(f"the next instance is {following}, not {target}")
        taken = {child.port for child in self.children.values()} | {self.config.dashboard_port}
        port = network.choose_ports([APP_PORT_BASE + self.config.instances], taken)[0]
        with self.lock:
            self.config.instances += 1
            self.config.app_ports.append(port)
            self.run.write_config(self.config)
            nginx_child = self.children.pop("nginx")  # keep nginx last: it stops first on down
            self._add(target, "app", port)
            self.children["nginx"] = nginx_child
            self.write_state()
        self.start(target)
        self.reload_nginx()
        return f"{target} added on port {port} and in nginx"

    def reload_nginx(self) -> None:
        """Render nginx.conf for the instances in rotation, reload, and wait for the old
        workers to exit: they hold every request sent under the old configuration."""
        master = self.children["nginx"]
        binary = self.binaries["nginx"]
        nginx.write_nginx_conf(self.config, self.run, binary, self.in_rotation())
        if not master.running or master.pid is None:
            return
        checked = subprocess.run(  # noqa: S603 - argv built by the lab
            nginx.nginx_argv(self.run, binary, "-t"), capture_output=True, text=True, check=False
        )
        if checked.returncode != 0:
            raise RequestError(f"nginx refused the new configuration: {checked.stderr.strip()}")
        old_workers = set(children_of(master.pid))
        os.kill(master.pid, signal.SIGHUP)
        deadline = time.monotonic() + 15.0
        while time.monotonic() < deadline:
            workers = set(children_of(master.pid))
            if workers - old_workers and not workers & old_workers:
                self.log(f"nginx reloaded with {', '.join(self.in_rotation())}")
                return
            time.sleep(POLL)
        raise RequestError("nginx did not finish reloading within 15 s; see its log")

    def down(self) -> str:
        self.aborting.set()
        with self.actions:
            with self.lock:
                self.phase = "stopping"
                self.write_state()
            started = time.monotonic()
            self.stop(list(self.children.values()), "stopped by down", quick=True)
            with self.lock:
                self.phase = "down"
                self.write_state()
        return f"all processes stopped in {time.monotonic() - started:.1f} s"

    def handle(self, request: dict[str, Any]) -> str:
        action = request.get("action")
        if action == "down":
            return self.down()
        handlers: dict[str, Callable[[], str]] = {
            "kill": lambda: self.kill(request["target"], request.get("signal", "KILL")),
            "start": lambda: self.start(request["target"]),
            "restart": lambda: self.restart(request["target"]),
            "drain": lambda: self.drain(request["target"]),
            "add": lambda: self.add_instance(request["target"]),
            "ping": lambda: self.phase,
        }
        if action not in handlers:
            raise RequestError(f"unknown request {action!r}")
        if action == "ping":
            return handlers[action]()
        if self.phase != "ready":
            raise RequestError(f"the lab is {self.phase}; wait for `up` to finish")
        with self.actions:
            return handlers[action]()

    # ------------------------------------------------------------------ serving

    def reply_to(self, request: dict[str, Any]) -> dict[str, Any]:
        """Carry out one request; the reply the CLI (or the dashboard) shows."""
        try:
            return {"ok": True, "message": self.handle(request)}
        except RequestError as error:
            return {"ok": False, "error": str(error)}
        except Exception as error:  # a bad request must not end the supervisor
            self.log(traceback.format_exc())
            return {"ok": False, "error": f"supervisor error: {error!r}"}

    def serve_connection(self, connection: socket.socket) -> None:
        request: dict[str, Any] = {}
        with connection:
            try:
                connection.settimeout(10.0)
                request = json.loads(connection.makefile("rb").readline() or b"{}")
                connection.settimeout(None)
                reply = self.reply_to(request)
            except Exception as error:  # a bad request must not end the supervisor
                self.log(traceback.format_exc())
                reply = {"ok": False, "error": f"supervisor error: {error!r}"}
            with contextlib.suppress(OSError):
                connection.sendall(json.dumps(reply).encode() + b"\n")
            if request.get("action") == "down":
                self.done.set()

    def serve(self) -> int:
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(socket_address(self.run))
        listener.listen(16)
        listener.settimeout(0.2)
        self.start_dashboard()
        self.write_state()
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)
        threading.Thread(target=self.watch, name="watch", daemon=True).start()
        threading.Thread(target=self._bring_up, name="bring-up", daemon=True).start()
        with listener:
            while not self.done.is_set():
                if self.stop_requested:
                    self.down()
                    break
                try:
                    connection, _ = listener.accept()
                except TimeoutError:
                    continue
                threading.Thread(
                    target=self.serve_connection, args=(connection,), daemon=True
                ).start()
        self.done.set()
        if self.dashboard is not None:
            self.dashboard.stop()
        return 1 if self.phase == "failed" else 0

    def start_dashboard(self) -> None:
        """Serve the live dashboard from a thread of this process, before any app starts
        (each is given its URL). Its buttons call ``reply_to`` in-process: a click is a
        CLI request without the socket. A lab without it still teaches, so a failure
        to listen is a note, not a failed ``up``."""
        if self.config.dashboard_port is None:
            return
        dashboard = Dashboard(self.run, self.config, self.snapshot, self.reply_to, self.log)
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
                self.phase = "ready"
                self.write_state()
            self.log(f"ready at {self.config.url}")

    def fail(self, name: str, reason: str) -> None:
        self.log(f"up failed: {reason}")
        spec = self.children[name].spec if name in self.children else None
        log = spec.log if spec is not None else self.run.log(name)
        failure = {"process": name, "reason": reason, "log": str(log), "log_tail": tail(log)}
        self.stop(list(self.children.values()), "stopped after a failed up", quick=True)
        with self.lock:
            self.failure = failure
            self.phase = "failed"
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
                    child.popen.wait(2.0)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    run = RunFolder(Path(args[0]))
    if "--foreground" not in args and os.fork() != 0:
        # The launcher returns at once; the supervisor is nobody's child but init's.
        os._exit(0)
    supervisor = Supervisor(run)
    try:
        return supervisor.serve()
    except BaseException:
        supervisor.log(traceback.format_exc())
        with supervisor.lock:
            supervisor.phase = "failed"
            supervisor.failure = supervisor.failure or {
                "process": "supervisor",
                "reason": "the supervisor crashed",
                "log": str(run.log("supervisor")),
                "log_tail": tail(run.log("supervisor")),
            }
        return 1
    finally:
        supervisor.kill_everything()
        with contextlib.suppress(Exception):
            supervisor.write_state()
        leftovers = [
            pid for child in supervisor.children.values() if child.pid
            for pid in group_members(child.pid)
        ]  # fmt: skip
        if leftovers:
            supervisor.log(f"left behind after SIGKILL: {leftovers}")


if __name__ == "__main__":
    sys.exit(main())
