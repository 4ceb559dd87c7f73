"""Conditional cart writes (``--conditional-writes``): what a shopper knows of its cart's version.

A hung instance that resumes applies the writes it held, though nginx has
long re-sent them elsewhere, and so overwrites a cart changed since. A
write that names the version it was meant for (``If-Match: "cart-<n>"``,
the ``ETag`` of the shop's last cart answer) is refused with 412 instead.
So a shopper sends the ETag it last saw on every cart write and checkout,
and forgets it whenever a write's outcome is unknown: sending a version it
is not sure of would only earn 412s. A shop that answers no ETag gets no
If-Match: the writes stay unconditional.

A 412 to the shopper's own write is no failure: the cart changed under it
(a copy of the same write landed first, or an older one late). The shopper
reads the cart and re-applies its own change. That read must show the cart
as it was at the refused version or as the shopper set it; any other cart
was lost, and is counted as one. Plain Python, tested without Locust.
"""

from __future__ import annotations

from dataclasses import dataclass

from loadtests.session_checks import Answer, Failure, cart_in

PRECONDITION_FAILED = 412
CART_PATH = "/api/cart/"
CART_ITEMS_PATH = "/api/cart/items/"
CHECKOUT_PATH = "/api/checkout/"


def is_cart_write(method: str, path: str) -> bool:
    """The writes the shop makes conditional: an item's PUT and DELETE, and checkout."""
    return (method in {"PUT", "DELETE"} and path.startswith(CART_ITEMS_PATH)) or (
        method == "POST" and path == CHECKOUT_PATH
    )


def shows_version(method: str, path: str) -> bool:
    """The requests whose answer carries the cart's ETag: its read and its writes."""
    return (method == "GET" and path == CART_PATH) or is_cart_write(method, path)


def strong(etag: str) -> str:
    """``etag`` if If-Match can name it; a weak one (``W/"..."``) never matches a write."""
    return "" if etag.startswith("W/") else etag


@dataclass
class CartVersion:
    """The cart's ETag as the shop last showed it, and what was in the cart at that version."""

    etag: str = ""  # empty: not known, so writes go unconditional
    cart: dict[int, int] | None = None  # the cart shown with ``etag``; None: not known
    # After a 412: the cart at the version the refused write named, which the
    # next read may still show (the write never landed). None: no conflict to check.
    refused: dict[int, int] | None = None

    def if_match(self, method: str, path: str) -> dict[str, str]:
        """The If-Match header for this request, when it is a cart write and a version is known."""
        return {"If-Match": self.etag} if self.etag and is_cart_write(method, path) else {}

    def heard(
        self, method: str, path: str, answer: Answer, failure: Failure | None, *, conditional: bool
    ) -> bool:
        """Learn from the answer to a request; True when it is a 412 to this shopper's If-Match.

        Any answer that is not a success with a cart (or an order) and its ETag
        leaves the version unknown: a write may or may not have landed.
        """
        if not shows_version(method, path):
            return False
        if conditional and failure is None and answer.status == PRECONDITION_FAILED:
            self.refused, self.etag, self.cart = self.cart, strong(answer.etag), None
            return True
        if failure is None and answer.status in {200, 201} and strong(answer.etag):
            # A checkout's 201 holds the order: the cart it leaves is empty.
            self.etag = strong(answer.etag)
            self.cart = cart_in(answer.json()) if answer.status == 200 else {}
        else:
            self.etag, self.cart = "", None
        return False

    def could_be(self, cart: dict[int, int] | None) -> bool:
        """After a 412: whether ``cart`` is the one the refused write found (no loss)."""
        return self.refused is not None and cart == self.refused
