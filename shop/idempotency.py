"""Exactly-once checkout: with an ``Idempotency-Key``, a repeated checkout answers with the first order.

nginx never re-sends a POST by itself: a checkout in flight on an instance
that dies is lost (502), and a client that simply tries again may be charged
twice. With a key (the IETF httpapi ``Idempotency-Key`` draft) a repeat is
safe, so nginx may re-send it to another instance and the client may retry:

- the same key and the same request: the same order, placed once (``replayed``);
- the same key for another request (another ``If-Match``, another body): 422.

The key's row is written in the order's transaction. Two copies of one
request racing on two instances both try to insert it; the unique constraint
lets one commit and rolls the other back, order included, and that one then
answers with the first order. Keys are per user and live 24 hours.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from shop import services
from shop.cart import Cart, CartStore
from shop.models import CheckoutKey, Order

KEY_LIFETIME = timedelta(hours=24)
# Printable ASCII without spaces, as a header value carries it, at most 255.
KEY_PATTERN = r"^[!-~]{1,255}$"
VALID_KEY = re.compile(KEY_PATTERN)


class InvalidKeyError(ValueError):
    """The key is empty, too long or not printable ASCII."""


class KeyReusedError(ValueError):
    """The key was first used for another request: its order is not this request's."""


@dataclass(frozen=True)
class Placed:
    order: Order
    cart: Cart  # the cart the checkout leaves, at its version
    replayed: bool  # an earlier request with this key placed the order


def fingerprint(*parts: bytes | str) -> str:
    """What makes two requests "the same": a digest of the parts given (the body, If-Match)."""
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part.encode() if isinstance(part, str) else part)
        digest.update(b"\0")
    return digest.hexdigest()


def checkout_once(
    user: Any,
    store: CartStore,
    key: str | None,
    request_fingerprint: str,
    *,
    versions: services.Versions = None,
) -> Placed:
    """``services.checkout``, or with ``key``, the order an earlier request with it placed."""
    if key is None:
        order, cart = services.checkout(user, store, versions=versions)
        return Placed(order, cart, replayed=False)
    if not VALID_KEY.match(key):
        raise InvalidKeyError("Idempotency-Key must be 1 to 255 printable ASCII characters.")
    try:
        with transaction.atomic():
            cutoff = timezone.now() - KEY_LIFETIME
            CheckoutKey.objects.filter(user=user, key=key, created_at__lt=cutoff).delete()
            earlier = CheckoutKey.objects.filter(user=user, key=key).select_related("order").first()
            if earlier is not None:
                return replay(earlier, store, request_fingerprint)
            order, cart = services.checkout(user, store, versions=versions)
            bought = {str(line.product_id): line.quantity for line in order.lines.all()}
            CheckoutKey.objects.create(
                user=user, key=key, fingerprint=request_fingerprint, order=order, lines=bought
            )
            return Placed(order, cart, replayed=False)
    except IntegrityError:
        # A copy of this request committed its key first: its order is the one.
        earlier = CheckoutKey.objects.filter(user=user, key=key).select_related("order").first()
        if earlier is None:
            raise
        return replay(earlier, store, request_fingerprint)


def replay(earlier: CheckoutKey, store: CartStore, request_fingerprint: str) -> Placed:
    """The order ``earlier`` placed; the cart emptied if that emptying was lost.

    In the session modes the cart is saved with the session, after the
    order's commit: an instance that died between the two left the cart
    full. If it still holds exactly what was bought, it is emptied now.
    """
    if earlier.fingerprint != request_fingerprint:
        raise KeyReusedError(
            "This Idempotency-Key was first used for another checkout request (another cart "
            f"or If-Match); it placed order {earlier.order_id}. Use a new key for a new checkout."
        )
    cart = store.load()
    if {str(product): quantity for product, quantity in cart} == earlier.lines:
        cart.clear()
        store.save(cart)
    return Placed(earlier.order, cart, replayed=True)
