"""What the shop does, apart from how a request asked for it (pages and API share these)."""

from __future__ import annotations

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


def cart_total(cart: Cart) -> Decimal:
    """Today's total; lines of deleted products count for nothing. Reads prices only."""
    prices = dict(
        Product.objects.filter(pk__in=[product_id for product_id, _ in cart]).values_list(
            "pk", "price"
        )
    )
    return Cart({pid: quantity for pid, quantity in cart if pid in prices}).total(prices)


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
