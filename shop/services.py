"""What the shop does, apart from how a request asked for it (pages and API share these)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Container
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import transaction

from shop.cart import Cart, CartStore, StaleCartError
from shop.models import Order, OrderLine, Product

log = logging.getLogger("shop.checkout")


class EmptyCartError(Exception):
    """Checkout of a cart with nothing in it."""


@dataclass(frozen=True)
class CartLineView:
    product: Product
    quantity: int

    @property
    def subtotal(self) -> Decimal:
        return self.product.price * self.quantity


def cart_lines(cart: Cart) -> list[CartLineView]:
    """The cart's lines with their products; lines of deleted products are left out."""
    products = Product.objects.in_bulk([product_id for product_id, _ in cart])
    return [
        CartLineView(products[product_id], quantity)
        for product_id, quantity in cart
        if product_id in products
    ]


class PriceList:
    """Every product's price, as this process last read it: at most ``max_age`` seconds old.

    Every cart request shows a total and the catalog changes rarely, so a
    process asks the database for the whole price list once every few
    seconds instead of once per request. A product saved or deleted through
    the ORM clears this process's copy at once (``shop.apps``); the other
    instances see the change within ``max_age``. Checkout never reads the
    copy: an order is charged the database's prices.
    """

    def __init__(self, max_age: float) -> None:
        self.max_age = max_age
        self._read: tuple[float, dict[int, Decimal]] | None = None

    def get(self) -> dict[int, Decimal]:
        read = self._read  # one read of the attribute: threads may replace it meanwhile
        now = time.monotonic()
        if read is None or now - read[0] > self.max_age:
            read = (now, dict(Product.objects.order_by().values_list("pk", "price")))
            self._read = read
        return read[1]

    def clear(self, **_signal: Any) -> None:
        self._read = None


PRICES = PriceList(max_age=10.0)


def cart_total(cart: Cart) -> Decimal:
    """The cart's total at current prices; lines of deleted products count for nothing."""
    return cart.total(PRICES.get())


# The versions a conditional write may apply to (the API's If-Match); None: any.
Versions = Container[int] | None


def checked_load(store: CartStore, versions: Versions) -> Cart:
    """The cart, if it is at one of ``versions``; else ``StaleCartError``, nothing changed."""
    cart = store.load()
    if versions is not None and cart.version not in versions:
        raise StaleCartError(cart.version)
    return cart


def _change(store: CartStore, change: Callable[[Cart], None], versions: Versions) -> Cart:
    """Load, check, change and save: the version goes up only if the lines changed."""
    cart = checked_load(store, versions)
    change(cart)
    store.save(cart, expected=None if versions is None else cart.version)
    return cart


def product_exists(product_id: int) -> bool:
    """Whether the catalog has this product: the price list first, the database if it is not there.

    A product created since this process read its price list is found in the
    database; one deleted since is still found here for up to ``PRICES.max_age``:
    a session's cart then holds a line that counts for nothing (``cart_lines``,
    ``cart_total``), and a cart of rows refuses it (``UnknownProductError``).
    """
    return product_id in PRICES.get() or Product.objects.filter(pk=product_id).exists()


def cart_set_item(
    store: CartStore, product_id: int, quantity: int, *, versions: Versions = None
) -> Cart:
    """Set a product's quantity (0 removes it) and save; raises ValueError for a bad quantity."""
    return _change(store, lambda cart: cart.set(product_id, quantity), versions)


def cart_add_item(store: CartStore, product_id: int, quantity: int = 1) -> Cart:
    return _change(store, lambda cart: cart.add(product_id, quantity), None)


def cart_remove_item(store: CartStore, product_id: int, *, versions: Versions = None) -> Cart:
    return _change(store, lambda cart: cart.remove(product_id), versions)


def order_place(user: Any, store: CartStore) -> Order:
    """Turn the cart into an order with lines, at today's prices, and empty the cart."""
    return checkout(user, store)[0]


@transaction.atomic
def checkout(user: Any, store: CartStore, *, versions: Versions = None) -> tuple[Order, Cart]:
    """``order_place``, checked against ``versions``; also gives the emptied cart, at its new version."""
    cart = checked_load(store, versions)
    lines = cart_lines(cart)
    if not lines:
        raise EmptyCartError("Your cart is empty.")
    order = Order.objects.create(
        user=user,
        total=sum((line.subtotal for line in lines), Decimal("0.00")),
        instance=settings.INSTANCE_NAME,
    )
    OrderLine.objects.bulk_create(
        OrderLine(
            order=order, product=line.product, quantity=line.quantity, unit_price=line.product.price
        )
        for line in lines
    )
    if settings.CHECKOUT_DELAY_S:
        # Lab-only (LAB_CHECKOUT_DELAY_S): the window in which a test kills this
        # instance with the order written but not committed.
        log.warning(
            "checkout of order %s held %.1f s before commit", order.pk, settings.CHECKOUT_DELAY_S
        )
        time.sleep(settings.CHECKOUT_DELAY_S)
    cart.clear()
    store.save(cart, expected=None if versions is None else cart.version)
    return order, cart
