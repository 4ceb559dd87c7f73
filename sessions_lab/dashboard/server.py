"""The dashboard's HTTP server: the page, its data endpoint, and its two actions.

It runs as a thread of the supervisor (``ThreadingHTTPServer`` from the
standard library: a handful of loopback clients need nothing more) and is
handed two functions by it: ``snapshot`` (what ``state.json`` holds, read in
memory) and ``act`` (the supervisor's own request handling, the code every
CLI request runs). So a click on "kill" is exactly ``sessions-lab kill``,
without a subprocess or a second path through the lab.

Routes::

    GET  /             the page (one self-contained HTML file, token inside)
    GET  /api/state    everything the page shows, as JSON; polled every second
    POST /api/kill     {"target": "app2", "signal": "KILL" | "TERM" | "STOP"}
    POST /api/start    {"target": "app2"}
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined, Template

from sessions_lab.cluster.config import LabConfig, RunFolder
from sessions_lab.cluster.control import SIGNALS, Action
from sessions_lab.cluster.state import LabState, ProcessStatus
from sessions_lab.dashboard.experiment import ExperimentWatch
from sessions_lab.dashboard.guard import refusal
from sessions_lab.dashboard.traffic import AccessLogTail
from sessions_lab.modes import get_mode

# The page offers the CLI's signals (``control.SIGNALS``); the supervisor would
# send any signal it is asked for, so the page's choice is checked here.
ACTIONS = {"/api/kill": Action.KILL, "/api/start": Action.START}
# Which processes the page offers to kill, and which to start (or resume).
ALIVE = tuple(status for status in ProcessStatus if status.alive)
STARTABLE = (ProcessStatus.EXITED, ProcessStatus.PAUSED, ProcessStatus.NOT_STARTED)
MAX_BODY = 1024
POLL_INTERVAL = 0.1  # how fast `stop` ends the serving loop (it waits one interval)

Snapshot = Callable[[], LabState]
Act = Callable[[dict[str, Any]], dict[str, Any]]


def process_state(process: dict[str, Any]) -> str:
    """One word for a card, from the supervisor's status and exit cause."""
    status = process.get("status")
    if status == ProcessStatus.RUNNING:
        return "healthy" if process.get("healthy") else "unhealthy"
    if status == ProcessStatus.PAUSED:
        return "hung"  # SIGSTOP: alive, holding every request sent to it
    if status == ProcessStatus.EXITED:
        cause = (process.get("exit") or {}).get("cause", "")
        if "killed" in cause:
            return "killed"
        return "stopped" if "stopped" in cause else "exited"
    return status or "unknown"  # starting, not started


def process_detail(process: dict[str, Any], state: str) -> str:
    if state == "hung":
        return "SIGSTOP: holds the requests sent to it; start resumes it"
    if state in ("killed", "stopped", "exited"):
        return str((process.get("exit") or {}).get("cause", ""))
    if process.get("drained"):
        return "drained: out of nginx until started again"
    return ""


class Dashboard:
    """The live dashboard of one lab, served from the supervisor's process."""

    def __init__(
        self,
        run: RunFolder,
        config: LabConfig,
        snapshot: Snapshot,
        act: Act,
        log: Callable[[str], None] = lambda message: None,
    ) -> None:
        self.run = run
        self.config = config
        self.snapshot = snapshot
        self.act = act
        self.log = log
        # The CSRF token: new with every supervisor, so a page of an earlier
        # lab cannot act on this one either.
        self.token = secrets.token_urlsafe(32)
        self.started_at = time.time()
        addresses = {
            f"{config.listen_address}:{port}": name
            for name, port in zip(config.app_names, config.app_ports, strict=False)
        }
        self.traffic = AccessLogTail(run.access_log, addresses)
        self.experiment = ExperimentWatch(run.experiment, config.mode, self.started_at)
        self.reading = threading.Lock()  # the tails keep offsets: one reader at a time
        self.server: ThreadingHTTPServer | None = None
        # Autoescaped like any page; the token and nonce are URL-safe base64,
        # so Jinja's escaping leaves them exactly as they are.
        self.template: Template = Environment(
            loader=PackageLoader("sessions_lab.dashboard", "templates"),
            autoescape=True,
            keep_trailing_newline=True,
            undefined=StrictUndefined,
        ).get_template("dashboard.html")

    # ------------------------------------------------------------------ lifecycle

    def start(self, port: int) -> int:
        """Listen on ``port`` (any free port if it was taken since ``up`` chose it) and
        serve from a daemon thread; returns the port in use."""
        try:
            server = LabHTTPServer((self.config.listen_address, port), self)
        except OSError:
            server = LabHTTPServer((self.config.listen_address, 0), self)
        self.server = server
        threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": POLL_INTERVAL},
            name="dashboard",
            daemon=True,
        ).start()
        return int(server.server_address[1])

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://{self.config.listen_address}:{self.server.server_address[1]}/"

    # ------------------------------------------------------------------ what the page shows

    def lab_state(self) -> dict[str, Any]:
        """The data endpoint's body: the lab, its processes with their traffic, the experiment."""
        state = self.snapshot()
        now = time.time()
        with self.reading:
            self.traffic.update()
            traffic = self.traffic.summary(now)
            experiment = self.experiment.summary(now)
        per_instance = traffic.pop("instances")
        processes = []
        for process in state.get("processes", []):
            shown = process_state(process)
            card: dict[str, Any] = {
                key: process.get(key) for key in ("name", "role", "pid", "port", "drained")
            }
            card.update(
                state=shown,
                detail=process_detail(process, shown),
                # When it ended (ISO, UTC): "killed by lab: SIGKILL at 10:42:07".
                since=(process.get("exit") or {}).get("at")
                if process.get("status") == ProcessStatus.EXITED
                else None,
                can_kill=process.get("status") in ALIVE,
                can_start=process.get("status") in STARTABLE,
            )
            if process.get("role") == "app":
                card["traffic"] = per_instance.get(process["name"]) or {
                    "rate": 0.0,
                    "requests": 0,
                    "errors_5xx": 0,
                    "retried_away": 0,
                    "history": [],
                }
            elif process.get("role") == "nginx":
                card["traffic"] = {
                    "rate": traffic["rate"],
                    "requests": traffic["requests"],
                    "errors_5xx": traffic["errors_5xx"],
                    "retried_away": 0,
                    "history": traffic["history"],
                }
            processes.append(card)
        mode = get_mode(self.config.mode)
        return {
            "lab": {
                "mode": self.config.mode,
                "mode_summary": mode.summary,
                "store": mode.store,
                "affinity": self.config.affinity,
                "db": self.config.db,
                "instances": self.config.instances,
                "phase": state.get("phase"),
                "url": self.config.url,
                "notes": state.get("notes", []),
                "failure": state.get("failure"),
            },
            "processes": processes,
            "traffic": traffic,
            "experiment": experiment,
            "now": now,
        }

    def page(self, nonce: str) -> str:
        return self.template.render(token=self.token, nonce=nonce)

    # ------------------------------------------------------------------ actions

    def perform(self, action: Action, body: dict[str, Any]) -> tuple[HTTPStatus, dict[str, Any]]:
        """Run a kill/start through the supervisor; the reply is the CLI's, as JSON."""
        target = body.get("target")
        known = {p.get("name") for p in self.snapshot().get("processes", [])}
        if not isinstance(target, str) or target not in known:
            return HTTPStatus.BAD_REQUEST, {
                "ok": False,
                "error": f"unknown target {target!r}: this lab runs {', '.join(sorted(known))}",
            }
        request: dict[str, Any] = {"action": action, "target": target}
        if action == Action.KILL:
            signame = str(body.get("signal", "KILL")).upper().removeprefix("SIG")
            if signame not in SIGNALS:
                return HTTPStatus.BAD_REQUEST, {
                    "ok": False,
                    "error": f"signal is one of {', '.join(SIGNALS)}",
                }
            request["signal"] = signame
        self.log(f"dashboard: {action} {target} {request.get('signal', '')}".rstrip())
        reply = self.act(request)
        return (HTTPStatus.OK if reply.get("ok") else HTTPStatus.CONFLICT), reply


class LabHTTPServer(ThreadingHTTPServer):
    """A ``ThreadingHTTPServer`` that knows its dashboard."""

    daemon_threads = True  # a request in flight never holds up the supervisor's exit
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], dashboard: Dashboard) -> None:
        self.dashboard = dashboard
        super().__init__(address, DashboardRequestHandler)


class DashboardRequestHandler(BaseHTTPRequestHandler):
    """Routes one request; every answer is checked by ``guard.refusal`` first."""

    server: LabHTTPServer
    server_version = "sessions-lab-dashboard"
    protocol_version = "HTTP/1.1"

    @property
    def dashboard(self) -> Dashboard:
        return self.server.dashboard

    def log_message(self, format: str, *args: Any) -> None:
        # One line per poll would drown the supervisor's log; actions are
        # logged by `perform`.
        return

    def send_body(
        self,
        status: HTTPStatus,
        body: bytes,
        content_type: str,
        extra: dict[str, str] | None = None,
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Referrer-Policy", "no-referrer")
        for name, value in (extra or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def send_json(self, status: HTTPStatus, data: dict[str, Any]) -> None:
        self.send_body(status, json.dumps(data).encode(), "application/json")

    def refused(self, token: str | None = None) -> bool:
        reason = refusal(self.client_address[0], self.headers, token)
        if reason is None:
            return False
        self.send_json(HTTPStatus.FORBIDDEN, {"ok": False, "error": reason})
        return True

    def do_GET(self) -> None:
        if self.refused():
            return
        path = self.path.split("?", 1)[0]
        if path == "/":
            nonce = secrets.token_urlsafe(16)
            self.send_body(
                HTTPStatus.OK,
                self.dashboard.page(nonce).encode(),
                "text/html; charset=utf-8",
                {
                    # Nothing from the network, nothing framing it (clickjacking
                    # the buttons), only this inline script.
                    "Content-Security-Policy": (
                        f"default-src 'none'; script-src 'nonce-{nonce}'; "
                        "style-src 'unsafe-inline'; img-src data:; connect-src 'self'; "
                        "frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
                    ),
                    "X-Frame-Options": "DENY",
                },
            )
        elif path == "/api/state":
            self.send_json(HTTPStatus.OK, self.dashboard.lab_state())
        elif path in ACTIONS:
            self.send_json(HTTPStatus.METHOD_NOT_ALLOWED, {"ok": False, "error": "POST only"})
        else:
            self.send_json(HTTPStatus.NOT_FOUND, {"ok": False, "error": "not found"})

    def do_POST(self) -> None:
        path = self.path.split("?", 1)[0]
        length = int(self.headers.get("Content-Length") or 0)
        # Read the body before answering, so the connection stays in step.
        body_bytes = self.rfile.read(min(length, MAX_BODY)) if length > 0 else b""
        if self.refused(self.dashboard.token):
            return
        if path not in ACTIONS:
            self.send_json(HTTPStatus.NOT_FOUND, {"ok": False, "error": "not found"})
            return
        if length > MAX_BODY:
            self.close_connection = True
            self.send_json(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, {"ok": False, "error": "too large"})
            return
        try:
            body = json.loads(body_bytes or b"{}")
        except ValueError:
            body = None
        if not isinstance(body, dict):
            self.send_json(
                HTTPStatus.BAD_REQUEST, {"ok": False, "error": "the body must be a JSON object"}
            )
            return
        status, reply = self.dashboard.perform(ACTIONS[path], body)
        self.send_json(status, reply)

    def do_PUT(self) -> None:
        self.close_connection = True
        self.send_json(HTTPStatus.METHOD_NOT_ALLOWED, {"ok": False, "error": "GET or POST only"})

    do_DELETE = do_PATCH = do_PUT
