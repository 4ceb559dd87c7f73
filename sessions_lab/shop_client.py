"""A small HTTP client of the shop's JSON API for the lab's own tools (bench, attack).

Standard library only: the lab's commands must not depend on test tools.
It keeps cookies like a browser, sends the CSRF token on writes, and in
``jwt`` mode a bearer token instead.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from http.cookiejar import Cookie, CookieJar
from typing import Any

CART_LINES = {1: 2, 4: 1, 7: 3, 12: 1, 19: 2}


@dataclass
class Client:
    """One logged-in shopper of the bench: the headers that carry its session."""

    base: str
    jwt: bool
    jar: CookieJar = field(default_factory=CookieJar)
    access: str = ""
    refresh: str = ""
    username: str = ""  # who ``log_in`` logged in

    def __post_init__(self) -> None:
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.jar))

    def cookie(self, name: str) -> str:
        return next((c.value for c in self.jar if c.name == name), "")

    def headers(self, write: bool = False) -> dict[str, str]:
        if self.jwt:
            return {"Authorization": f"Bearer {self.access}"}
        headers = {"Cookie": "; ".join(f"{c.name}={c.value}" for c in self.jar)}
        if write:
            headers["X-CSRFToken"] = self.cookie("csrftoken")
        return headers

    def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        timeout: float = 10,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, Any]:
        """The status and JSON body of one request; ``headers`` go after the session's own."""
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.base + path, data=data, method=method)  # noqa: S310 - loopback URL we built
        request.add_header("Content-Type", "application/json")
        for name, value in {**self.headers(write=method != "GET"), **(headers or {})}.items():
            if name != "Cookie":  # the jar adds cookies itself
                request.add_header(name, value)
        try:
            with self.opener.open(request, timeout=timeout) as response:
                return response.status, json.loads(response.read() or b"null")
        except urllib.error.HTTPError as error:
            try:
                return error.code, json.loads(error.read() or b"null")
            except ValueError:
                return error.code, None

    def set_cookie(self, name: str, value: str) -> None:
        """Plant a cookie, as a thief replaying a stolen one would."""
        host = self.base.split("//", 1)[1].split(":", 1)[0]
        self.jar.set_cookie(
            Cookie(0, name, value, None, False, host, False, False, "/", True, False, None,
                   False, None, None, {})
        )  # fmt: skip

    def log_in(self, username: str, password: str, cart: bool = True) -> None:
        self.call("GET", "/api/whoami/")
        credentials = {"username": username, "password": password}
        if self.jwt:
            status, body = self.call("POST", "/api/token/", credentials)
            self.access = body["access"] if status == 200 else ""
        else:
            status, _ = self.call("POST", "/api/session/login/", credentials)
        if status != 200:
            raise RuntimeError(f"login as {username} failed with {status}")
        self.username = username
        if self.jwt:
            self.refresh = body["refresh"]
        for product, quantity in CART_LINES.items() if cart else ():
            self.call("PUT", f"/api/cart/items/{product}/", {"quantity": quantity})

    def session_bytes(self) -> int:
        """What the client sends each request to carry its session (cookie or token)."""
        if self.jwt:
            return len(self.access)
        return len(self.cookie("sessionid"))
