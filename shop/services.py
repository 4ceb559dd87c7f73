"""What the shop does, apart from how a request asked for it (pages and API share these)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import transaction

from shop.cart import Cart, CartStore
from shop.models import Order, OrderLine, Product


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


def cart_set_item(store: CartStore, product: Product, quantity: int) -> Cart:
    """Set a product's quantity (0 removes it) and save; raises ValueError for a bad quantity."""
    cart = store.load()
    cart.set(product.pk, quantity)
    store.save(cart)
    return cart


def cart_add_item(store: CartStore, product: Product, quantity: int = 1) -> Cart:
    cart = store.load()
    cart.add(product.pk, quantity)
    store.save(cart)
    return cart


def cart_remove_item(store: CartStore, product: Product) -> Cart:
    cart = store.load()
    cart.remove(product.pk)
    store.save(cart)
    return cart


@transaction.atomic
def order_place(user: Any, store: CartStore) -> Order:
    """Turn the cart into an order with lines, at today's prices, and empty the cart."""
    cart = store.load()
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
    cart.clear()
    store.save(cart)
    return order
