"""A shopper with two tabs open: both change the cart at the same moment.

Django saves a session as one value: a request loads all of it, changes
its copy, and writes all of it back. Two requests of one user on two
instances (or two threads) at once both load the same cart, and the one
that saves last writes a cart without the other's change: a *lost update*,
although the shop answered 200 to both. The same happens in ``cookie``
mode in the browser itself: both answers set the session cookie, and the
cookie jar keeps the last.

Each round, the two tabs add different products at the same time, each
remembering what the shop acknowledged; then the cart is read once and
every acknowledged line it does not show is a lost update (the users file:
``updates_acknowledged``, ``lost_updates``). The cart is then emptied, and
the next round begins. Losing an update is what this measures, so it is
not a failure: Locust's failures stay those of ``ShopUser.send``. The shoppers
walk it with ``--tabs 2`` (the ``two-tabs`` scenario).
"""

from __future__ import annotations

import gevent
from locust import TaskSet

from loadtests.journey import CART_ITEM, MAX_QUANTITY, Journey, Repair, cart_item, step
from loadtests.jwt_shopping import JwtShopping
from loadtests.session_checks import cart_in
from loadtests.session_shopping import SessionShopping
from loadtests.shop_user import JWT_MODE

TABS = 2
WRITES_PER_TAB = 3  # products each tab adds per round, one request after another


class TwoTabs(Journey):
    """The round both tab journeys share: two tabs write at once, then one read counts."""

    @step
    def two_tab_round(self) -> None:
        if len(self.products) < TABS * WRITES_PER_TAB:
            self.learn_products()
            return
        rng = self.user.rng
        chosen = rng.sample(self.products, TABS * WRITES_PER_TAB)
        # Chosen before the tabs start: with --seed a round is the same whichever tab runs first.
        tabs = [
            [(p, rng.randint(1, MAX_QUANTITY)) for p in chosen[tab::TABS]] for tab in range(TABS)
        ]
        acknowledged: dict[int, int] = {}
        gevent.joinall([gevent.spawn(self.tab, lines, acknowledged) for lines in tabs])
        answer, failure = self.send("GET", "/api/cart/")
        shown = cart_in(answer.json())
        if failure is None and answer.status == 200 and shown is not None:
            record = self.user.record
            record.updates_acknowledged += len(acknowledged)
            record.lost_updates += sum(shown.get(p) != q for p, q in acknowledged.items())
        # Empty the cart for the next round: the repair sets it to what the shopper expects.
        self.check.cart = {}
        self.needs = max(self.needs, Repair.CART)

    def tab(self, lines: list[tuple[int, int]], acknowledged: dict[int, int]) -> None:
        """One tab: set each line in turn; remember what the shop acknowledged."""
        for product, quantity in lines:
            answer, failure = self.send(
                "PUT", cart_item(product), name=CART_ITEM, json={"quantity": quantity}
            )
            if failure is not None or answer.status != 200:
                self.after(failure, write=True)
                return
            acknowledged[product] = quantity


class TwoTabSessionShopping(TwoTabs, SessionShopping):
    """Two tabs sharing one cookie jar: the session modes."""


class TwoTabJwtShopping(TwoTabs, JwtShopping):
    """Two tabs sharing one token pair: ``jwt`` mode, whose cart is rows per line."""


# Only the round: Locust's metaclass would also inherit the shopping steps.
for journey in (TwoTabSessionShopping, TwoTabJwtShopping):
    journey.tasks = [TwoTabs.two_tab_round]


def two_tab_journey(mode: str) -> type[TaskSet]:
    """The two-tab journey for ``mode`` (``Shopper`` walks it with ``--tabs 2``)."""
    return TwoTabJwtShopping if mode == JWT_MODE else TwoTabSessionShopping
