"""Anonymous visitors: the catalog, product pages, and (where the mode allows) an anonymous cart.

Most people in a shop never log in. Their load matters (it is most of the
catalog traffic) and so does their cart: in the five session modes an
anonymous visitor has a session too, and losing it empties the cart just as
surely. In ``jwt`` mode the cart belongs to a user, so an anonymous visitor
only browses.
"""

from __future__ import annotations

from typing import ClassVar

from locust import TaskSet, task

from loadtests.journey import PRODUCT_PAGE, Journey, step
from loadtests.records import UserKind
from loadtests.session_shopping import CookieSession
from loadtests.shop_user import JWT_MODE, ShopUser

CATEGORIES = ("coffee", "tea", "gear", "mugs")


class AnonymousBrowsing(Journey):
    """Look around without logging in: pages and the product list, nothing to lose."""

    kind: ClassVar[str] = UserKind.ANONYMOUS

    tasks = {Journey.browse_products: 2}

    def on_start(self) -> None:
        answer, _ = self.send("GET", "/api/whoami/")
        self.user.record.pin(answer.served_by)
        self.learn_products()

    @task(3)
    @step
    def view_catalog_page(self) -> None:
        self.view_page("/")

    @task(1)
    @step
    def view_category_page(self) -> None:
        self.view_page(f"/?category={self.user.rng.choice(CATEGORIES)}", name="/?category=[name]")

    @task(2)
    @step
    def view_product_page(self) -> None:
        if self.products:
            product = self.user.rng.choice(self.products)
            self.view_page(f"/products/{product}/", name=PRODUCT_PAGE)

    @task(1)
    @step
    def view_cart_page(self) -> None:
        self.view_page("/cart/")


class AnonymousCartBrowsing(CookieSession, AnonymousBrowsing):
    """Browse, and fill an anonymous cart kept in the session (the five session modes)."""

    tasks = {
        Journey.add_to_cart: 2,
        Journey.view_cart: 2,
        Journey.remove_from_cart: 1,
    }


class AnonymousBrowser(ShopUser):
    """A visitor who never logs in; one in four users by default."""

    weight = 1
    numbering = "anonymous"

    def journey_for(self, mode: str) -> type[TaskSet]:
        return AnonymousBrowsing if mode == JWT_MODE else AnonymousCartBrowsing
