"""The faults the lab injects and the repairs it offers, one method per request.

``kill`` (a crash, a graceful stop or a hang), ``start``, ``restart``,
``drain`` (out of nginx, requests in flight finished), ``add_instance``
(scale out) and the nginx reload that drain and scale-out rest on. Each
returns the line the user reads, or raises ``RequestError`` saying what to do
instead; each waits until its effect is real (the process gone, the old nginx
workers done), so a scenario's next step meets the lab it expects.
"""

from __future__ import annotations

import signal
import subprocess

from sessions_lab.cluster import apps, network, nginx
from sessions_lab.cluster.child import Child, StartFailure
from sessions_lab.cluster.config import APP_PORT_BASE
from sessions_lab.cluster.control import STOP_TIMEOUT, tail
from sessions_lab.cluster.lifecycle import ChildLifecycle
from sessions_lab.cluster.processes import is_paused, reload_and_wait, signal_group
from sessions_lab.cluster.state import ProcessStatus
from sessions_lab.waiting import POLL, wait_until

PAUSE_TIMEOUT = 2.0  # SIGSTOP takes effect at once; this is for a loaded machine
KILL_TIMEOUT = 2.0  # SIGKILL likewise
RESTART_TIMEOUT = 30.0
RELOAD_TIMEOUT = 15.0


class RequestError(Exception):
    """A request the supervisor refuses; the message tells the user what to do."""


class FaultOperations(ChildLifecycle):
    """Breaks and repairs the children of a run, as the CLI and the dashboard ask."""

    def child(self, target: str) -> Child:
        if target not in self.children:
            known = ", ".join(self.children)
            raise RequestError(f"unknown target {target!r}: this lab runs {known}")
        return self.children[target]

    def kill(self, target: str, signame: str = "KILL") -> str:
        child = self.child(target)
        pid = child.pid
        if not child.running or pid is None:
            raise RequestError(f"{target} is not running; `sessions-lab start {target}` starts it")
        signum = signal.Signals[f"SIG{signame}"]
        if signum == signal.SIGSTOP:
            signal_group(pid, signal.SIGSTOP)
            self.log(f"sent SIGSTOP to {target} (process group {pid})")
            wait_until(lambda: is_paused(pid), PAUSE_TIMEOUT, interval=POLL / 5)
            with self.lock:
                child.status = ProcessStatus.PAUSED
                child.healthy = False
                self.write_state()
            return (
                f"{target} paused (SIGSTOP): it holds the requests sent to it; "
                f"`sessions-lab start {target}` resumes it"
            )
        with self.lock:
            child.pending_cause = f"killed by lab: SIG{signame}"
        signal_group(pid, signum)
        self.log(f"sent SIG{signame} to {target} (process group {pid})")
        signal_group(pid, signal.SIGCONT)
        wait = KILL_TIMEOUT if signum == signal.SIGKILL else apps.GRACEFUL_TIMEOUT + STOP_TIMEOUT
        if not child.exited.wait(wait):
            return f"sent SIG{signame} to {target}; it is still running"
        return f"{target} killed (SIG{signame})"

    def start(self, target: str) -> str:
        child = self.child(target)
        if child.status == ProcessStatus.PAUSED and child.pid is not None:
            signal_group(child.pid, signal.SIGCONT)
            self.log(f"sent SIGCONT to {target} (process group {child.pid})")
            with self.lock:
                child.status = ProcessStatus.RUNNING
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
            self.wait_healthy(child, RESTART_TIMEOUT)
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
        pid = master.pid
        if not master.running or pid is None:
            return
        checked = subprocess.run(  # noqa: S603 - argv built by the lab
            nginx.nginx_argv(self.run, binary, "-t"), capture_output=True, text=True, check=False
        )
        if checked.returncode != 0:
            raise RequestError(f"nginx refused the new configuration: {checked.stderr.strip()}")
        if not reload_and_wait(pid, RELOAD_TIMEOUT):
            raise RequestError(
                f"nginx did not finish reloading within {RELOAD_TIMEOUT:.0f} s; see its log"
            )
        self.log(f"nginx reloaded with {', '.join(self.in_rotation())}")
