"""127.0.0.1:PORT to the cluster's ingress-nginx: the ``kubectl port-forward`` the lab runs.

The Kubernetes driver's one child process. It runs in a process group of
its own (Ctrl-C in the terminal does not reach it mid-run) and its pid is
kept in the run folder, so that ``down`` -- or the next ``up``, after a run
that never got to ``down`` -- stops it by pid, and only if that pid still
is a port-forward.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import signal
import subprocess
from pathlib import Path

import psutil

from sessions_lab.cluster.errors import LabError
from sessions_lab.waiting import wait_until

# Where kind's (and the usual) ingress-nginx install puts its controller.
INGRESS_NAMESPACE = "ingress-nginx"
INGRESS_SERVICE = "service/ingress-nginx-controller"
ANSWER_TIMEOUT = 120.0  # ingress-nginx learns the new pods' addresses within seconds
STOP_TIMEOUT = 5.0


class PortForward:
    """``kubectl port-forward -n ingress-nginx service/ingress-nginx-controller PORT:80``."""

    def __init__(self, kubectl: str, run_root: Path) -> None:
        self.kubectl = kubectl
        self.pid_file = run_root / "port-forward.pid"
        self.log = run_root / "port-forward.log"
        self._process: subprocess.Popen[bytes] | None = None

    def argv(self, port: int) -> list[str]:
        return [
            self.kubectl,
            "-n",
            INGRESS_NAMESPACE,
            "port-forward",
            INGRESS_SERVICE,
            f"{port}:80",
        ]

    def start(self, port: int) -> None:
        """Start forwarding, and return once the shop answers ``/healthz`` through it."""
        with self.log.open("wb") as log:
            self._process = process = subprocess.Popen(  # noqa: S603 - argv built here
                self.argv(port), stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip
        self.pid_file.write_text(f"{process.pid}\n", encoding="utf-8")

        def answering() -> bool:
            if process.poll() is not None:
                tail = self.log.read_text(encoding="utf-8", errors="replace").strip()[-500:]
                raise LabError(f"kubectl port-forward exited: {tail or process.returncode}")
            return healthz(port)

        try:
            if not wait_until(answering, ANSWER_TIMEOUT, interval=0.2):
                raise LabError(
                    f"the shop did not answer on http://127.0.0.1:{port}/healthz within "
                    f"{ANSWER_TIMEOUT:.0f} s through kubectl port-forward (see {self.log})"
                )
        except LabError:
            self.stop()
            raise

    def stop(self) -> bool:
        """Stop the port-forward started here, or the one the pid file names if that still
        is a port-forward; whether there was one."""
        process, self._process = self._process, None
        recorded = None if process else self.recorded()
        self.pid_file.unlink(missing_ok=True)
        if process is not None:
            if process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGTERM)  # its own group: start_new_session
                try:
                    process.wait(timeout=STOP_TIMEOUT)
                except subprocess.TimeoutExpired:
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(process.pid, signal.SIGKILL)
                    process.wait()
            return True
        if recorded is None:
            return False
        with contextlib.suppress(psutil.Error):
            recorded.terminate()
            _, alive = psutil.wait_procs([recorded], timeout=STOP_TIMEOUT)
            for left in alive:
                left.kill()
        return True

    def recorded(self) -> psutil.Process | None:
        """The process the pid file names, if it is still a ``kubectl port-forward``."""
        try:
            process = psutil.Process(int(self.pid_file.read_text(encoding="utf-8")))
            return process if "port-forward" in process.cmdline() else None
        except (FileNotFoundError, ValueError, psutil.Error):
            return None


def healthz(port: int) -> bool:
    """Whether the shop answers ``GET /healthz`` with 200 on 127.0.0.1:PORT."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
    try:
        connection.request("GET", "/healthz")
        return connection.getresponse().status == 200
    except OSError:
        return False
    finally:
        connection.close()
