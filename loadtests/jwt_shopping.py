"""A shopper in ``jwt`` mode: a bearer token for identity, the cart in the database.

There is no server session to lose here: the token is checked by signature
on any instance, and the cart lives in database rows keyed by the user. An
access token expires, though, and a client is expected to trade its refresh
token for a new pair: before a step, when it can read that its token has
expired, or when the shop answers 401 to one. That is the protocol, not a
loss. Only when the refresh itself is refused does the shopper have to log
in again, and that *is* a lost session (``logged_out``).
"""

from __future__ import annotations

from typing import Any, ClassVar

from locust import task

from loadtests.journey import SHOPPING_TASKS, Repair, Shopping, step
from loadtests.records import UserKind
from loadtests.session_checks import Answer, Failure, access_token_expired, cart_in


class JwtShopping(Shopping):
    """Get a token pair once, shop with ``Authorization: Bearer``, refresh when it expires."""

    kind: ClassVar[str] = UserKind.JWT

    tasks = SHOPPING_TASKS

    def __init__(self, parent: Any) -> None:
        super().__init__(parent)
        self.access = ""
        self.refresh_token = ""
        self.logged_in_before = False

    def auth_headers(self, method: str) -> dict[str, str]:
        # A bearer header is never sent by a browser on its own: no CSRF token needed.
        return {"Authorization": f"Bearer {self.access}"} if self.access else {}

    def send(self, method: str, path: str, **kwargs: Any) -> tuple[Answer, Failure | None]:
        answer, failure = super().send(method, path, **kwargs)
        if answer.status == 401 and failure is None:
            # The step did not happen; the refresh, then putting the cart back, makes it so.
            self.needs = max(self.needs, Repair.REFRESH)
        return answer, failure

    def ready(self) -> bool:
        """Refresh an access token known to have expired before sending it, as a client library does.

        Waiting for the shop's 401 instead would put a step and a think time
        between the expiry and the refresh, and an active shopper could find its
        refresh token (which lives ``--session-idle`` seconds) expired too.
        """
        if not (self.access and access_token_expired(self.access)):
            return True
        if self.refresh():
            return True
        self.needs = max(self.needs, Repair.REFRESH)
        return False

    def excused(self, answer: Answer) -> bool:
        """An expired access token's 401: the protocol asking for a refresh."""
        return answer.status == 401 and bool(self.access) and access_token_expired(self.access)

    def log_in(self) -> bool:
        self.check.logged_in = False
        self.access = ""
        if not self.products and not self.learn_products():
            return False
        answer, failure = self.send(
            "POST",
            "/api/token/",
            json={"username": self.check.username, "password": self.user.password},
        )
        body = answer.json()
        if failure is not None or not isinstance(body, dict):
            return False
        self.access, self.refresh_token = str(body.get("access", "")), str(body.get("refresh", ""))
        self.check.logged_in = True
        self.user.record.pin(answer.served_by)
        if not self.logged_in_before:
            # The cart outlives the token in the database, from an earlier run too:
            # the first login adopts it; after a loss the shopper's own cart is put back.
            answer, failure = self.send("GET", "/api/cart/")
            cart = cart_in(answer.json())
            if failure is not None or cart is None:
                return False
            self.check.cart = cart
            self.logged_in_before = True
        return True

    def refresh(self) -> bool:
        """Trade the refresh token for a new pair; a refused refresh is a lost login."""
        self.access = ""
        answer, failure = self.send(
            "POST", "/api/token/refresh/", json={"refresh": self.refresh_token}
        )
        body = answer.json()
        if failure is Failure.LOGGED_OUT:
            self.needs = Repair.LOGIN
            return False
        if failure is not None or not isinstance(body, dict):
            return False
        self.access, self.refresh_token = str(body.get("access", "")), str(body.get("refresh", ""))
        return True

    @task(1)
    @step
    def view_catalog_page(self) -> None:
        self.view_page("/")
