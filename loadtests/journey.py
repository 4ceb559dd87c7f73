"""What every journey through the shop shares: its expectations, its cart steps, its repairs.

A journey is a Locust ``TaskSet`` that carries a ``SessionCheck``: what the
shopper's session must hold right now. Each step updates that expectation
with what the step meant to do and lets ``ShopUser.send`` judge the answer
against it. A failure does not end the user: the next step first *repairs*
(logs in again, puts the cart back the way the shopper left it) without
counting the same loss twice, so the user can notice a later loss too.
Repairs are idempotent on purpose: ``PUT`` sets a quantity, so a repair that
is itself cut off by a fault can simply be tried again. With
``--conditional-writes`` every cart write names the cart's version it was
meant for (loadtests/cart_versions.py); a 412 is a conflict, repaired the
same way.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from enum import IntEnum
from typing import Any, ClassVar

import gevent
from locust import TaskSet

from loadtests.cart_versions import PRECONDITION_FAILED, CartVersion
from loadtests.session_checks import (
    TRANSPORT_FAILURES,
    Answer,
    Failure,
    SessionCheck,
    Shows,
    cart_in,
)
from loadtests.shop_user import ShopUser

# Grouped names keep Locust's statistics to one row per kind of request.
CART_ITEM = "/api/cart/items/[id]/"
PRODUCT_PAGE = "/products/[id]/"
# A cart of a few lines is what people buy; it also keeps the signed cookie
# of `cookie` mode far below its 4 KB ceiling.
MAX_CART_LINES = 4
MAX_QUANTITY = 3
# A cart read that shows the cart before the shopper's own acknowledged write
# (a replica behind its primary) is read again this much later: right then, it
# was a stale read; still old, the write was lost (a cart mismatch).
STALE_REREAD_S = 0.5
# A checkout that got no answer is sent this many times in all, with the same key.
CHECKOUT_ATTEMPTS = 3


def cart_item(product: int) -> str:
    return f"/api/cart/items/{product}/"


class Repair(IntEnum):
    """What a journey must put right before its next step; a larger value includes the smaller."""

    NONE = 0
    CART = 1  # make the shop's cart what the shopper set
    REFRESH = 2  # jwt: trade the refresh token for a new pair
    LOGIN = 3  # log in again, then put the cart back


def _says_logged_out(answer: Any) -> bool:
    """A whoami answer of someone the shop does not know (401, or anonymous)."""
    if answer.status == 401:
        return True
    body = answer.json()
    return answer.status == 200 and isinstance(body, dict) and body.get("authenticated") is False


def step(action: Callable[[Any], None]) -> Callable[[Any], None]:
    """A journey step that runs only once earlier damage is repaired (repairing is the step)."""

    @functools.wraps(action)
    def run(journey: Journey) -> None:
        if journey.needs is not Repair.NONE:
            journey.repair()
        elif journey.ready():
            action(journey)

    return run


class Journey(TaskSet):
    """A walk through the shop that knows what its session must hold."""

    user: ShopUser
    kind: ClassVar[str] = ""
    logs_in: ClassVar[bool] = False

    def __init__(self, parent: Any) -> None:
        super().__init__(parent)
        self.check = SessionCheck(username=getattr(self.user, "username", ""))
        self.products: list[int] = []
        self.needs = Repair.LOGIN if self.logs_in else Repair.NONE
        self.loss_counted = False  # the last failed step counted a session loss
        # The cart before the last write the shop acknowledged: what a stale read shows.
        self.cart_before_write: dict[int, int] | None = None
        # Kept only with --conditional-writes: without it no request carries If-Match.
        self.version = CartVersion() if self.user.conditional_writes else None
        self.user.record.kind = self.kind

    def on_start(self) -> None:
        self.repair()

    # ------------------------------------------------------------ per mode
    def auth_headers(self, method: str) -> dict[str, str]:
        """The headers that carry this journey's identity (and CSRF token) on ``method``."""
        return {}

    def log_in(self) -> bool:
        """Log in; False when it could not (it is tried again at the next step)."""
        return True

    def refresh(self) -> bool:
        return True

    def ready(self) -> bool:
        """Anything a client does before a step by itself; False leaves the step to a repair."""
        return True

    def prepare_cart(self) -> bool:
        """Anything needed before the cart can be put back; False to try again later."""
        return True

    # ------------------------------------------------------------ requests
    def excused(self, answer: Answer) -> bool:
        """An answer of this journey's protocol that is no failure, whatever the request."""
        return False

    def send(
        self,
        method: str,
        path: str,
        *,
        excuse: Callable[[Answer], bool] | None = None,
        headers: dict[str, str] | None = None,
        if_match: dict[str, str] | None = None,
        **kwargs: Any,
    ) -> tuple[Answer, Failure | None]:
        # ``if_match``: the condition the caller fixed (a checkout sends the same
        # request every attempt); else the cart version this journey last saw.
        condition = (
            if_match
            if if_match is not None
            else (self.version.if_match(method, path) if self.version else {})
        )

        def excused(answer: Answer) -> bool:
            # A 412 to our own If-Match is the shop refusing a stale write, as asked.
            return (
                (bool(condition) and answer.status == PRECONDITION_FAILED)
                or self.excused(answer)
                or (excuse is not None and excuse(answer))
            )

        answer, failure = self.user.send(
            method,
            path,
            self.check,
            headers={**self.auth_headers(method), **condition, **(headers or {})},
            excuse=excused,
            **kwargs,
        )
        if self.version and self.version.heard(
            method, path, answer, failure, conditional=bool(condition)
        ):
            # The write did not happen; reading the cart and setting it again makes it so.
            self.user.record.conflicts += 1
            self.needs = max(self.needs, Repair.CART)
        return answer, failure

    def after(self, failure: Failure | None, *, write: bool) -> None:
        """Decide what the next step must repair after a step that ended with ``failure``."""
        if failure is None:
            return
        self.loss_counted = failure in (Failure.LOGGED_OUT, Failure.CART_MISMATCH)
        if failure is Failure.LOGGED_OUT and self.logs_in:
            self.needs = max(self.needs, Repair.LOGIN)
        elif write or failure is Failure.CART_MISMATCH:
            # A write that failed may or may not have been applied; either way
            # the shop's cart is no longer known, so it is set again.
            self.needs = max(self.needs, Repair.CART)

    def repair(self) -> None:
        if self.needs is Repair.CART and self.logs_in and not self.still_logged_in():
            return
        if self.needs is Repair.LOGIN and self.version:
            # The lost login is the loss, counted once: the cart after it is a new one.
            self.version.refused = None
        if self.needs is Repair.LOGIN and self.log_in():
            self.needs = Repair.CART
        if self.needs is Repair.REFRESH and self.refresh():
            self.needs = Repair.CART
        if self.needs is Repair.CART and self.impose_cart():
            self.needs = Repair.NONE

    def still_logged_in(self) -> bool:
        """Ask before repairing a cart: a failed step leaves the login unknown too.

        In the session modes an anonymous cart write succeeds, so a shopper
        whose session vanished (a store that restarted empty) would quietly
        rebuild its cart in a new anonymous session; only asking tells.
        Returns False while the shop cannot answer (try again next step);
        a logged-out answer is counted as a loss and asks for a new login.
        """
        # A loss the failed step already counted (a cart that came back
        # empty) is the same loss when whoami then says "anonymous": once.
        counted, self.loss_counted = self.loss_counted, False
        answer, failure = self.send(
            "GET",
            "/api/whoami/",
            shows=Shows.IDENTITY,
            excuse=lambda reply: counted and _says_logged_out(reply),
        )
        if failure is Failure.LOGGED_OUT or (failure is None and _says_logged_out(answer)):
            self.needs = Repair.LOGIN
            return True
        return failure is None

    def learn_products(self) -> bool:
        """Read the catalog: the ids to shop from and the prices a checkout must charge."""
        answer, failure = self.send("GET", "/api/products/")
        body = answer.json()
        if failure is not None or not isinstance(body, list):
            return False
        try:
            prices = {int(p["id"]): Decimal(str(p["price"])) for p in body}
        except (KeyError, TypeError, ValueError, InvalidOperation):
            return False
        self.products = sorted(prices)
        self.check.prices = prices
        return True

    def impose_cart(self) -> bool:
        """Set every line of the shop's cart to what the shopper expects; True once it is so."""
        if not self.prepare_cart():
            return False
        answer, failure = self.send("GET", "/api/cart/", **self.conflict_check())
        server = cart_in(answer.json())
        if self.version and (server is not None or failure is Failure.CART_MISMATCH):
            self.version.refused = None
        if failure is Failure.CART_MISMATCH:
            self.loss_counted = True  # the same loss, if who-am-I then says "anonymous"
        if failure is not None or server is None:
            return False
        wanted = self.check.cart
        for product in sorted(set(server) | set(wanted)):
            if server.get(product, 0) != wanted.get(product, 0):
                answer, failure = self.send(
                    "PUT",
                    cart_item(product),
                    name=CART_ITEM,
                    json={"quantity": wanted.get(product, 0)},
                )
                # Anything but 200 (a jwt token expiring half-way, say) leaves the cart unknown.
                if failure is not None or answer.status != 200:
                    return False
        return True

    def conflict_check(self) -> dict[str, Any]:
        """How to judge the cart read after a 412: the cart the write found, or the shopper's own.

        Anything else was lost while the shopper's writes were being refused,
        and counts as the ``cart_mismatch`` the write itself would have shown.
        """
        version = self.version
        if version is None or version.refused is None:
            return {}
        return {
            "shows": Shows.CART,
            "excuse": lambda answer: version.could_be(cart_in(answer.json())),
        }

    # ------------------------------------------------------------ steps
    @step
    def browse_products(self) -> None:
        self.learn_products()

    @step
    def add_to_cart(self) -> None:
        if not self.products:
            self.learn_products()
            return
        lines = self.check.cart
        # A full cart gets a new quantity on one of its lines instead of a new line.
        product = self.user.rng.choice(
            list(lines) if len(lines) >= MAX_CART_LINES else self.products
        )
        quantity = self.user.rng.randint(1, MAX_QUANTITY)
        self.check.cart = {**lines, product: quantity}
        _, failure = self.send(
            "PUT", cart_item(product), name=CART_ITEM, json={"quantity": quantity}, shows=Shows.CART
        )
        self.wrote(lines, failure)
        self.after(failure, write=True)

    @step
    def remove_from_cart(self) -> None:
        if not self.check.cart:
            self.add_to_cart()
            return
        product = self.user.rng.choice(list(self.check.cart))
        before = self.check.cart
        self.check.cart = {p: q for p, q in before.items() if p != product}
        _, failure = self.send("DELETE", cart_item(product), name=CART_ITEM, shows=Shows.CART)
        self.wrote(before, failure)
        self.after(failure, write=True)

    def wrote(self, before: dict[int, int], failure: Failure | None) -> None:
        """Remember the cart a write replaced, if the shop acknowledged it."""
        self.cart_before_write = dict(before) if failure is None else None

    @step
    def view_cart(self) -> None:
        before = self.cart_before_write

        def stale(answer: Answer) -> bool:
            shown = cart_in(answer.json())
            return (
                answer.status == 200 and before is not None and shown == before != self.check.cart
            )

        answer, failure = self.send("GET", "/api/cart/", shows=Shows.CART, excuse=stale)
        if failure is None and stale(answer):
            # The cart before our own acknowledged write: read again a moment later.
            gevent.sleep(STALE_REREAD_S)
            answer, failure = self.send("GET", "/api/cart/", shows=Shows.CART)
            if failure is None:
                self.user.record.stale_reads += 1
        self.after(failure, write=False)

    def view_page(self, path: str, name: str | None = None) -> None:
        """An HTML page: only its status can be judged (a bounce to the login page among them)."""
        _, failure = self.send("GET", path, name=name)
        self.after(failure, write=False)


class Shopping(Journey):
    """The steps of a shopper who is logged in: the cart steps, who-am-I, and checkout."""

    logs_in = True

    @step
    def check_identity(self) -> None:
        _, failure = self.send("GET", "/api/whoami/", shows=Shows.IDENTITY)
        self.after(failure, write=False)

    @step
    def checkout(self) -> None:
        """Pay for the cart, once: a checkout that got no answer is sent again with its key.

        The ``Idempotency-Key`` makes the repeat safe: the shop answers an
        order it already placed for this key instead of placing another
        (and nginx may re-send it to another instance by itself). Every
        attempt is the same request, ``If-Match`` included. A key stays in
        ``checkouts_unacknowledged`` until a 201 names its order: the order
        audit then tells whether the shop placed one the shopper never heard of.
        """
        if not self.check.cart:
            self.add_to_cart()
            return
        key = uuid.uuid4().hex
        record = self.user.record
        record.checkouts_unacknowledged.append(key)
        condition = self.version.if_match("POST", "/api/checkout/") if self.version else {}
        for attempt in range(CHECKOUT_ATTEMPTS):
            if attempt:
                # A client's backoff before it tries again, not a wait for anything.
                gevent.sleep(self.user.rng.uniform(0.2, 0.6))
            answer, failure = self.send(
                "POST",
                "/api/checkout/",
                ok=(201,),
                shows=Shows.ORDER,
                headers={"Idempotency-Key": key},
                if_match=condition,
            )
            if failure not in TRANSPORT_FAILURES:
                break
        body = answer.json() if isinstance(answer.json(), dict) else {}
        if answer.status == 201 and not answer.truncated and body.get("order") is not None:
            # Placed, whatever the judgment: a total other than expected (a cart
            # changed behind the shopper's back) is a loss, but still an order.
            self.check.cart = {}
            record.checkouts_unacknowledged.remove(key)
            record.orders.append({"order": body["order"], "total": body.get("total"), "key": key})
        elif failure in TRANSPORT_FAILURES:
            # Placed or not, nobody can tell from here (the order audit will):
            # the shopper empties its cart either way rather than count a loss
            # that did not happen.
            self.check.cart = {}
        self.after(failure, write=True)


# How often a logged-in shopper takes each step, in every mode: mostly cart
# work, an identity check now and then, a checkout rarely.
SHOPPING_TASKS = {
    Shopping.add_to_cart: 4,
    Shopping.view_cart: 3,
    Shopping.browse_products: 2,
    Shopping.check_identity: 2,
    Shopping.remove_from_cart: 1,
    Shopping.checkout: 1,
}
