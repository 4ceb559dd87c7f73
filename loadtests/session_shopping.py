"""A browser-like shopper in the five session modes: a cookie session, CSRF tokens, the session API.

It logs in once, as its own demo user (logging in costs ~0.4 s of CPU on the
shop, so never per request), then shops through the JSON API and now and
then opens a page as a person would. The session lives wherever the mode
keeps it (one instance's memory, Redis, the database, the cookie itself),
which is exactly what a fault in the lab puts to the test. A login that
vanished shows as a 401, a bounce to the login page, or a who-am-I that no
longer knows the shopper; a cart that vanished shows in any cart body.
"""

from __future__ import annotations

from typing import ClassVar

from locust import task

from loadtests.journey import SHOPPING_TASKS, Journey, Shopping, step
from loadtests.records import UserKind

UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class CookieSession(Journey):
    """Identity in a session cookie: every write carries the CSRF token Django set in a cookie."""

    def auth_headers(self, method: str) -> dict[str, str]:
        # Read the cookie at each write: Django rotates the token at login.
        return {"X-CSRFToken": self.user.csrf_token()} if method in UNSAFE_METHODS else {}

    def fetch_csrf_cookie(self) -> tuple[bool, bool]:
        """Ask who-am-I: it sets the CSRF cookie. Returns (answered, logged in)."""
        answer, failure = self.send("GET", "/api/whoami/")
        body = answer.json()
        return failure is None, isinstance(body, dict) and bool(body.get("authenticated"))

    def prepare_cart(self) -> bool:
        answered, logged_in = self.fetch_csrf_cookie()
        if answered and self.logs_in and not logged_in:
            # The loss that sent us here took the login too: one loss, counted once.
            return self.log_in()
        return answered


class SessionShopping(CookieSession, Shopping):
    """Log in once through ``/api/session/login/``, then shop and check after every step."""

    kind: ClassVar[str] = UserKind.SESSION

    tasks = SHOPPING_TASKS

    def log_in(self) -> bool:
        # Until the shop says otherwise the shopper is not logged in, so a
        # refused login reads as unexpected (wrong demo users), not as a loss.
        self.check.logged_in = False
        if not self.products and not self.learn_products():
            return False
        answered, _ = self.fetch_csrf_cookie()
        if not answered:
            return False
        answer, failure = self.send(
            "POST",
            "/api/session/login/",
            json={"username": self.check.username, "password": self.user.password},
        )
        if failure is not None:
            return False
        self.check.logged_in = True
        self.user.record.pin(answer.served_by, answer.session_node)
        return True

    @task(1)
    @step
    def view_catalog_page(self) -> None:
        self.view_page("/")

    @task(1)
    @step
    def view_orders_page(self) -> None:
        # Needs a login: without one Django answers 302 to /accounts/login/?next=...
        self.view_page("/orders/")
