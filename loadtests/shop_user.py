"""The base of every simulated user: one HTTP client that judges and records each answer.

Every request of these users goes through ``ShopUser.send``, which never
follows a redirect (a bounce to the login page is the news, not a detour to
a 200), reports each answer to Locust as a success or as one of the fixed
failure classes, and counts which instance served it. A user first learns
the shop's session mode (``--session-mode``, or the ``X-Session-Mode`` header
of its first answer) and then picks the journey that fits that mode, so one
locustfile drives all six modes.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Collection
from typing import Any, ClassVar

from locust import FastHttpUser, TaskSet, task

from loadtests.records import UserKind, UserRecord
from loadtests.run_log import RUN
from loadtests.session_checks import Answer, Failure, SessionCheck, Shows

JWT_MODE = "jwt"

logger = logging.getLogger(__name__)


def is_on(value: Any) -> bool:
    """A flag option: the parser hands over a bool, the web UI text."""
    return str(value).lower() in {"true", "on", "1"}


def client_address(number: int) -> str:
    """A made-up client address for user ``number``; only ever sent as a header."""
    return f"10.77.{(number >> 8) & 255}.{number & 255}"


class ShopUser(FastHttpUser):
    """A user of the shop: its identity, its client address, and the judged requests it sends."""

    abstract = True
    numbering: ClassVar[str] = "user"  # users of one numbering are named <numbering>1, 2...
    # A hung instance must become a `connection` failure within a run, not after
    # Locust's default of 60 s. nginx in front gives up sooner: after 5 s, or for
    # a login after LOGIN_WAIT_S (30 s, sessions_lab/settings.py), and then
    # re-sends it; the client waits for that.
    network_timeout = 40.0
    connection_timeout = 5.0

    def __init__(self, environment: Any) -> None:
        super().__init__(environment)
        self.number = RUN.number("any user")
        # One generator per user: with --seed, user N makes the same choices every run.
        # (The web UI hands options over as text: an empty seed is no seed.)
        seed = self.option("seed", None)
        self.rng = random.Random(None if seed in (None, "") else f"{seed}:{self.number}")  # noqa: S311 - choices, not secrets
        self.mode = str(self.option("session_mode", "") or "")
        self.headers: dict[str, str] = {}
        if is_on(self.option("client_ip_per_user", False)):
            # nginx's real-IP module trusts loopback, so `--affinity ip` hashes on this.
            self.headers["X-Forwarded-For"] = client_address(self.number)
        # Read by the journeys: If-Match on every cart write (loadtests/cart_versions.py).
        self.conditional_writes = is_on(self.option("conditional_writes", False))
        # The journey names the kind once the mode is known.
        self.record = RUN.add_user(
            UserRecord(user=self.display_name(), kind=UserKind.UNKNOWN, number=self.number)
        )

    def option(self, name: str, default: Any) -> Any:
        """A command-line option of this run (its default when run without the parser)."""
        options = self.environment.parsed_options
        return getattr(options, name, default) if options is not None else default

    def display_name(self) -> str:
        return f"{self.numbering}{RUN.number(self.numbering)}"

    def wait_time(self) -> float:
        return self.rng.uniform(0, float(self.option("think_time", 1.0)))

    def journey_for(self, mode: str) -> type[TaskSet]:
        """The journey this user walks in ``mode``."""
        raise NotImplementedError

    @task
    def arrive(self) -> None:
        """Learn the session mode, then walk the journey made for it from the next step on."""
        if not self.mode:
            answer, failure = self.send("GET", "/api/whoami/", SessionCheck())
            if failure is None and not answer.session_mode:
                logger.warning("%s answers without X-Session-Mode: is it the shop?", self.host)
            self.mode = answer.session_mode
        if self.mode:
            # An instance attribute: Locust picks the next task from `self.tasks`.
            self.tasks = [self.journey_for(self.mode)]

    def csrf_token(self) -> str:
        for cookie in self.client.cookiejar:
            if cookie.name == "csrftoken":
                return cookie.value or ""
        return ""

    def send(
        self,
        method: str,
        path: str,
        check: SessionCheck,
        *,
        name: str | None = None,
        json: Any = None,
        headers: dict[str, str] | None = None,
        ok: Collection[int] = (200,),
        shows: Shows = Shows.NOTHING,
        excuse: Callable[[Answer], bool] | None = None,
    ) -> tuple[Answer, Failure | None]:
        """Send one request, judge its answer against ``check``, report and record the verdict.

        An answer ``excuse`` accepts is reported as a success and left to the
        caller: the jwt journey's 401 for an expired access token is the
        protocol asking for a refresh, not a failure.
        """
        sent_at = time.time()
        with self.client.request(
            method,
            path,
            name=name,
            json=json,
            headers={**self.headers, **(headers or {})},
            allow_redirects=False,
            catch_response=True,
        ) as response:
            answer = _answer_of(response)
            excused = excuse is not None and excuse(answer)
            failure = None if excused else check.judge(answer, ok=ok, shows=shows)
            if failure is None:
                response.success()
            else:
                response.failure(failure.value)
                self.record.failed(failure, RUN.seconds(), time.time())
                RUN.failed_request(
                    failed_request(self.record.user, method, path, answer, failure, sent_at)
                )
        self.record.served(answer.served_by, sent_at, answer.session_node)
        return answer, failure


def failed_request(
    user: str, method: str, path: str, answer: Answer, failure: Failure, sent_at: float
) -> dict[str, Any]:
    """One line of the failures file: what the report needs to explain this failure."""
    return {
        "at": round(sent_at, 3),  # sent, Unix time
        "done": round(time.time(), 3),  # answered (or given up on)
        "t": round(RUN.seconds_at(sent_at), 3),
        "user": user,
        "request": f"{method} {path}",
        "status": answer.status,
        "error": answer.error,
        "truncated": answer.truncated,
        "failure": failure.value,
        "served_by": answer.served_by,
        "request_id": answer.request_id,
    }


def _answer_of(response: Any) -> Answer:
    headers = response.headers or {}
    status = response.status_code or 0
    error = getattr(response, "error", None)  # no answer at all: refused, reset, timed out
    # The status line came, then the connection closed before the whole body:
    # Locust keeps the reading's exception in the request's meta (and an empty body).
    cut_off = (getattr(response, "request_meta", None) or {}).get("exception")
    truncated = bool(status) and error is None and cut_off is not None
    try:
        body = response.text or ""
    except Exception as unreadable:
        body, truncated, cut_off = "", bool(status), unreadable
    length = headers.get("Content-Length")
    if status and length and length.isdigit() and len(body.encode()) < int(length):
        truncated = True
    if truncated:
        error = error or cut_off or "the body ended before its Content-Length"
    return Answer(
        request_id=headers.get("X-Request-ID", "") or "",
        error=(error if isinstance(error, str) else f"{type(error).__name__}: {error}")
        if error
        else "",
        truncated=truncated,
        status=status,
        body=body,
        location=headers.get("Location", "") or "",
        served_by=headers.get("X-Served-By", "") or "",
        session_mode=headers.get("X-Session-Mode", "") or "",
        session_node=headers.get("X-Session-Node", "") or "",
        etag=headers.get("ETag", "") or "",
    )
