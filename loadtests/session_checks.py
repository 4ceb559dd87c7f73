"""What every load-test user checks on every answer, and the names it reports.

A simulated shopper knows what its session must hold: whether it is logged
in, as whom, and what is in its cart. Comparing each answer with that is
how the lab *measures* session loss instead of guessing it from error
rates: a logged-out shopper still gets 200s from the catalog, and a cart
emptied by a lost session is a perfectly valid 200 from ``/api/cart/``.

Failures carry one of a few fixed names, so Locust's failure table stays a
handful of rows however many URLs fail. This module imports nothing from
Locust or gevent, so the pytest process can test it directly.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from typing import Any

LOGIN_PATH = "/accounts/login/"


class Failure(StrEnum):
    """The failure classes, exactly as ``summary.json`` counts them."""

    LOGGED_OUT = "logged_out"  # should be logged in, but the shop says otherwise
    CART_MISMATCH = "cart_mismatch"  # the cart differs from what the shopper set
    CSRF = "csrf"  # a write refused for its CSRF token
    HTTP_5XX = "http_5xx"  # the shop (or nginx in front of it) failed
    CONNECTION = "connection"  # no HTTP answer at all: refused, reset, timed out
    # None of the above explains the answer (a 404, a 429...): a bug in the
    # shop or in these users, never expected in a healthy run. Kept apart so
    # it cannot inflate any of the five classes.
    UNEXPECTED = "unexpected"


FAILURE_CLASSES: tuple[Failure, ...] = (
    Failure.LOGGED_OUT,
    Failure.CART_MISMATCH,
    Failure.CSRF,
    Failure.HTTP_5XX,
    Failure.CONNECTION,
)
SESSION_LOSSES = frozenset({Failure.LOGGED_OUT, Failure.CART_MISMATCH})
# Requests without a valid answer: summary.json's ``failed_requests``
# (docs/architecture.md).
TRANSPORT_FAILURES = frozenset({Failure.HTTP_5XX, Failure.CONNECTION})


@dataclass(frozen=True)
class Answer:
    """The parts of an HTTP response the checks read; status 0 means no response."""

    status: int
    body: str = ""
    location: str = ""
    served_by: str = ""
    session_mode: str = ""
    session_node: str = ""  # X-Session-Node: the memcached node holding the session, if any
    etag: str = ""  # the cart's version, on cart answers of a shop that keeps one
    request_id: str = ""  # nginx's X-Request-ID: finds the request in nginx's access log
    error: str = ""  # why there is no (whole) answer: the client's exception
    # The status line came, then the connection closed before the whole body:
    # no valid answer, counted as `connection` and reported apart.
    truncated: bool = False

    def json(self) -> Any:
        """The body as JSON, or None when it is not JSON."""
        try:
            return json.loads(self.body)
        except ValueError:
            return None


def transport_failure(answer: Answer) -> Failure | None:
    """Failures that say nothing about the session: no answer, a 5xx, a CSRF refusal."""
    if answer.status == 0 or answer.truncated:
        return Failure.CONNECTION
    if answer.status >= 500:
        return Failure.HTTP_5XX
    if answer.status == 403 and "csrf" in answer.body.lower():
        return Failure.CSRF
    return None


def bounced_to_login(answer: Answer) -> bool:
    """A redirect to the login page: what an HTML page needing a login answers without one."""
    return answer.status in {301, 302, 303, 307, 308} and LOGIN_PATH in answer.location


def session_interrupted(answer: Answer) -> bool:
    """Django's 400 when the session row vanished while the request was saving it."""
    return answer.status == 400 and "session was deleted" in answer.body


def cart_in(body: Any) -> dict[int, int] | None:
    """The lines of a cart body (``{"items": [{"product", "quantity"}]}``), None if not a cart."""
    if not isinstance(body, Mapping) or not isinstance(body.get("items"), list):
        return None
    try:
        return {int(item["product"]): int(item["quantity"]) for item in body["items"]}
    except (KeyError, TypeError, ValueError):
        return None


def cart_total(cart: Mapping[int, int], prices: Mapping[int, Decimal]) -> Decimal:
    """What the shop must charge for ``cart``; an unknown product counts as 0."""
    return sum(
        (prices.get(product, Decimal(0)) * quantity for product, quantity in cart.items()),
        Decimal("0.00"),
    )


def access_token_expired(token: str, now: float | None = None) -> bool:
    """Whether a JWT's ``exp`` claim has passed; read without verifying (only the server can)."""
    try:
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        return float(claims["exp"]) <= (time.time() if now is None else now)
    except (IndexError, KeyError, TypeError, ValueError):
        # Not a JWT we can read: the server's 401 is all we know, so treat it as expired
        # and let the refresh decide.
        return True


class Shows(StrEnum):
    """What part of the session an answer's body reveals."""

    NOTHING = "nothing"
    CART = "cart"  # a cart body: /api/cart/, PUT and DELETE of an item
    IDENTITY = "identity"  # a whoami body
    ORDER = "order"  # a checkout body: the total of the cart it emptied


@dataclass
class SessionCheck:
    """What one shopper's session must hold, and the verdict on each answer against it."""

    logged_in: bool = False
    username: str = ""
    cart: dict[int, int] = field(default_factory=dict)
    prices: dict[int, Decimal] = field(default_factory=dict)

    def judge(
        self, answer: Answer, *, ok: Collection[int] = (200,), shows: Shows = Shows.NOTHING
    ) -> Failure | None:
        """The failure class of ``answer``, or None when it is what this session expects.

        The transport classes come first: a 502 from nginx says nothing about
        the session. A lost login comes before a lost cart, because a lost
        session loses both and is counted once, as the more visible of the two.
        """
        failure = transport_failure(answer)
        if failure is not None:
            return failure
        if session_interrupted(answer):
            return Failure.LOGGED_OUT if self.logged_in else Failure.CART_MISMATCH
        if self.logged_in and (answer.status == 401 or bounced_to_login(answer)):
            return Failure.LOGGED_OUT
        if shows is Shows.ORDER and answer.status == 400 and self.cart:
            return Failure.CART_MISMATCH  # "your cart is empty", but it should not be
        if answer.status not in ok:
            return Failure.UNEXPECTED
        body = answer.json()
        if shows is Shows.IDENTITY:
            return self._identity_failure(body)
        if shows is Shows.CART:
            return None if cart_in(body) == self.cart else Failure.CART_MISMATCH
        if shows is Shows.ORDER:
            return self._order_failure(body)
        return None

    def _identity_failure(self, body: Any) -> Failure | None:
        if not isinstance(body, Mapping):
            return Failure.UNEXPECTED
        if self.logged_in and (
            not body.get("authenticated") or body.get("username") != self.username
        ):
            return Failure.LOGGED_OUT
        return None

    def _order_failure(self, body: Any) -> Failure | None:
        if not isinstance(body, Mapping) or not self.prices:
            return None
        try:
            charged = Decimal(str(body.get("total")))
        except InvalidOperation:
            return Failure.UNEXPECTED
        return None if charged == cart_total(self.cart, self.prices) else Failure.CART_MISMATCH
