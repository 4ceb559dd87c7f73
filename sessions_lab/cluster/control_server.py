"""The supervisor's side of the control protocol: serving requests on its socket.

Each connection carries one request (``control`` frames it) and gets one
reply, on a thread of its own so a slow request never stops a ``status`` or a
``down``. Requests that change the lab run one at a time, and only once
``up`` is done; ``ping`` and ``down`` are always answered. Whatever a request
does wrong becomes an error reply: a bad request must not end the supervisor.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import traceback
from collections.abc import Callable
from typing import Any

from sessions_lab.cluster.control import Action, encode, read_message
from sessions_lab.cluster.faults import FaultOperations, RequestError
from sessions_lab.cluster.state import Phase

ACCEPT_TIMEOUT = 0.2  # how often the serving loop looks for the end of the run
READ_TIMEOUT = 10.0  # a client that sends no request in this time is dropped


class ControlServer(FaultOperations):
    """Answers the CLI's (and the dashboard's) requests with the fault operations."""

    stop_requested = False  # SIGTERM or SIGINT: the supervisor is to go down

    def handle(self, request: dict[str, Any]) -> str:
        """Carry out one request; the line the user reads, or ``RequestError``."""
        name = request.get("action")
        if name == Action.DOWN:
            return self.down()
        if name == Action.PING:
            return self.phase.value
        handlers: dict[str, Callable[[], str]] = {
            Action.KILL: lambda: self.kill(request["target"], request.get("signal", "KILL")),
            Action.START: lambda: self.start(request["target"]),
            Action.RESTART: lambda: self.restart(request["target"]),
            Action.DRAIN: lambda: self.drain(request["target"]),
            Action.ADD: lambda: self.add_instance(request["target"]),
        }
        if not isinstance(name, str) or name not in handlers:
            raise RequestError(f"unknown request {name!r}")
        if self.phase != Phase.READY:
            raise RequestError(f"the lab is {self.phase}; wait for `up` to finish")
        with self.actions:
            return handlers[name]()

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
                connection.settimeout(READ_TIMEOUT)
                request = read_message(connection) or {}
                connection.settimeout(None)
                reply = self.reply_to(request)
            except Exception as error:  # a bad request must not end the supervisor
                self.log(traceback.format_exc())
                reply = {"ok": False, "error": f"supervisor error: {error!r}"}
            with contextlib.suppress(OSError):
                connection.sendall(encode(reply))
            if request.get("action") == Action.DOWN:
                self.done.set()

    def serve_requests(self, listener: socket.socket) -> None:
        """Accept connections on ``listener`` until the run ends (``down`` or a signal)."""
        listener.settimeout(ACCEPT_TIMEOUT)
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
